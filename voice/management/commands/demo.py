"""`python manage.py demo`: the whole product on embedded defaults, in one process.

Migrates, seeds the demo campaign and logins, starts the Twilio sandbox, points the app at it, starts
the dialer, and serves the app. Ctrl-C stops everything; running it again reuses the data.
"""

from __future__ import annotations

import io
import socket
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils.log import configure_logging

from campaigns.demo import LOGINS, demo_seed
from voice import gateway
from voice.dialer import Dialer


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

    def handle(self, *args, port, sandbox_port, time_scale, seed, verbosity, force, **options):
        from voice.sandbox import Sandbox, SandboxConfig  # only the demo wires the sandbox into the app

        if not settings.TWILIO_SANDBOX:
            raise CommandError("the demo runs on the Twilio sandbox: TWILIO_SANDBOX is set to false")
        database = demo_database_refusal(settings.DATABASES["default"], force=force)
        if database:
            raise CommandError(database)
        if verbosity < 2:
            # Every webhook and request logs a line at INFO: within seconds they would scroll the banner (the URL
            # and the logins) off the screen. Warnings and errors still show; -v 2 shows everything.
            # In the settings' LOGGING itself: loading the ASGI app sets Django up, and logging, once more.
            settings.LOGGING["root"]["level"] = "WARNING"
            settings.LOGGING["loggers"]["django"] = {"level": "WARNING"}  # Django's default puts its tree at INFO
            configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
        call_command("migrate", verbosity=0, interactive=False)
        seeded = demo_seed()
        campaign = seeded.campaign
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

        database = settings.DATABASES["default"]
        afresh = f" (delete {database['NAME']} to start afresh)" if "sqlite" in database["ENGINE"] else ""
        data = f"Reusing the data of an earlier run{afresh}." if seeded.reused else "Created the demo data."
        banner = [
            self.style.SUCCESS("The Dialer demo is running."),
            data,
            f"  app       {settings.PUBLIC_BASE_URL}/",
            *(f"  {'manager' if manager else 'agent':9} {username} / {password}"
              for username, password, manager in LOGINS),
            f"  campaign  {campaign.name} ({campaign.contacts.count()} contacts)",
            f"  sandbox   {sandbox.base_url}/sandbox/?token={sandbox.control_token}  (the simulated calls, live)",
            "Log in as the agent, press Go ready, and the dialer starts calling. Ctrl-C stops everything.",
        ]
        if verbosity < 2:
            banner.append("Quiet: only warnings and errors are shown from here (-v 2 shows every request).")
        announcer = threading.Thread(target=self._announce_when_up, args=(port, banner, stop), name="banner",
                                     daemon=True)
        announcer.start()
        # The dev server's own start-up lines would come after ours and push them up: at -v 2 only.
        quiet = {} if verbosity >= 2 else {"stdout": io.StringIO()}
        try:
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, skip_checks=True, **quiet)
        finally:
            stop.set()
            worker.join(timeout=5)
            sandbox.stop()
            self.stdout.write("demo stopped")
            self.stdout.flush()

    def _announce_when_up(self, port: int, lines: list[str], stop: threading.Event) -> None:
        """Print the banner once the app answers, so it is the last thing on screen, and flush it: piped output
        is block-buffered and would otherwise sit unseen in the buffer."""
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                stop.wait(0.1)
        if stop.is_set():
            return
        for line in lines:
            self.stdout.write(line)
        self.stdout.flush()
