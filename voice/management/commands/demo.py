"""`python manage.py demo`: the whole product on embedded defaults, in one process.

Migrates, seeds the demo campaign and logins, starts the Twilio sandbox, points the app at it, starts
the dialer, and serves the app. Ctrl-C stops everything; running it again reuses the data.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from campaigns.demo import LOGINS, demo_seed
from voice import gateway
from voice.dialer import Dialer

log = logging.getLogger("dialer.demo")


def demo_database_refusal(database: dict, *, force: bool) -> str:
    """Why the demo must not write its published logins into this database ('' when it may). The demo's own
    databases are the default SQLite file and any database whose name contains 'demo'."""
    name = str(database.get("NAME", ""))
    if force or (database["ENGINE"].endswith("sqlite3") and name.endswith("db.sqlite3")) or "demo" in name.lower():
        return ""
    return (f"refusing to seed the demo (logins with published passwords) into the database {name!r}: use the "
            "default SQLite file, a database named *demo*, or --force")


class Command(BaseCommand):
    help = "Run the demo: SQLite (or DATABASE_URL), in-memory channels, the Twilio sandbox, the dialer, the web app."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--sandbox-port", type=int, default=8100)
        parser.add_argument("--time-scale", type=float, default=1.0,
                            help="sandbox speed: 1 = real time; 5 = calls play out five times faster")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--force", action="store_true",
                            help="seed the demo logins into a database whose name does not say 'demo'")

    def handle(self, *args, port, sandbox_port, time_scale, seed, force, **options):
        from voice.sandbox import Sandbox, SandboxConfig  # only the demo wires the sandbox into the app

        if not settings.TWILIO_SANDBOX:
            raise CommandError("the demo runs on the Twilio sandbox: TWILIO_SANDBOX is set to false")
        database = demo_database_refusal(settings.DATABASES["default"], force=force)
        if database:
            raise CommandError(database)
        call_command("migrate", verbosity=0, interactive=False)
        campaign = demo_seed()
        settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{port}"
        sandbox = Sandbox(SandboxConfig(
            port=sandbox_port, account_sid=settings.TWILIO_ACCOUNT_SID, auth_token=settings.TWILIO_AUTH_TOKEN,
            application_sid=settings.TWILIO_TWIML_APP_SID, cps=max(1.0, settings.TWILIO_CPS),
            time_scale=time_scale, seed=seed, allowed_origins=(settings.PUBLIC_BASE_URL, f"http://localhost:{port}"),
        ))
        sandbox.start()
        settings.TWILIO_API_BASE_URL = sandbox.base_url
        settings.TWILIO_SANDBOX_CONTROL_TOKEN = sandbox.control_token
        gateway._client_for.cache_clear()

        stop = threading.Event()
        worker = threading.Thread(target=Dialer(tick_s=0.5).run, args=(stop,), name="dialer", daemon=True)
        worker.start()

        out = self.stdout
        out.write(self.style.SUCCESS(f"Dialer demo: {campaign.name} ({campaign.contacts.count()} contacts)"))
        out.write(f"  app      {settings.PUBLIC_BASE_URL}/")
        for username, password, manager in LOGINS:
            role = "manager" if manager else "agent"
            out.write(f"  {role:8} {username} / {password}")
        out.write(f"  sandbox  {sandbox.base_url}/sandbox/?token={sandbox.control_token}  (simulated calls, live)")
        out.write("Log in as the agent, press Ready, and the dialer starts calling. Ctrl-C stops everything.")
        try:
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, skip_checks=True)
        finally:
            stop.set()
            worker.join(timeout=5)
            sandbox.stop()
            out.write("demo stopped")
