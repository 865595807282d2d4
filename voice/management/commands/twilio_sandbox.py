"""`python manage.py twilio_sandbox`: run the local Twilio emulator in the foreground until Ctrl-C.

Credentials default to the app's own TWILIO_* settings, so the sandbox signs webhooks with the token the app
checks them against. See docs/sandbox.md.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from voice.sandbox import Sandbox, SandboxConfig


def _setting(name: str) -> str | None:
    return getattr(settings, name, None) or None


class Command(BaseCommand):
    help = "Run the Twilio sandbox (a local emulator of Twilio's REST API and webhooks) until Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = SandboxConfig()
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100, help="0 picks a free port")
        parser.add_argument("--account-sid", default=_setting("TWILIO_ACCOUNT_SID") or defaults.account_sid)
        # The app's own token only when the app is in sandbox mode: a production token never signs sandbox
        # webhooks (they would be indistinguishable from Twilio's).
        parser.add_argument("--auth-token", default=(_setting("TWILIO_AUTH_TOKEN") if _setting("TWILIO_SANDBOX")
                                                     else None) or defaults.auth_token)
        parser.add_argument("--control-token", default=_setting("TWILIO_SANDBOX_CONTROL_TOKEN"),
                            help="the control API's token (default: TWILIO_SANDBOX_CONTROL_TOKEN, else a random one)")
        parser.add_argument("--allow-origin", action="append", dest="allowed_origins",
                            help="a page origin allowed to call the control API from a browser "
                                 "(default: PUBLIC_BASE_URL); repeatable")
        parser.add_argument("--api-key-sid", default=_setting("TWILIO_API_KEY"))
        parser.add_argument("--api-key-secret", default=_setting("TWILIO_API_SECRET"))
        parser.add_argument("--application-sid", default=_setting("TWILIO_TWIML_APP_SID") or defaults.application_sid)
        parser.add_argument("--cps", type=float, default=getattr(settings, "TWILIO_CPS", defaults.cps))
        parser.add_argument(
            "--time-scale", type=float, default=defaults.time_scale, help="simulated seconds per real second"
        )
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--duplicate-rate", type=float, default=0.0)
        parser.add_argument(
            "--jitter",
            type=float,
            default=0.0,
            dest="jitter_s",
            help="random extra delay per callback, simulated seconds (reorders them)",
        )
        parser.add_argument("--drop-status-rate", type=float, default=0.0)
        parser.add_argument("--rest-error-rate", type=float, default=0.0)
        parser.add_argument("--rest-error-kind", choices=("429", "500"), default="429")
        parser.add_argument(
            "--rest-latency",
            type=float,
            default=0.0,
            dest="rest_latency_s",
            help="real seconds added to every REST response",
        )
        parser.add_argument(
            "--webhook-timeout", type=float, default=defaults.webhook_timeout_s, dest="webhook_timeout_s"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        logging.basicConfig(
            level=logging.INFO if options["verbosity"] >= 1 else logging.WARNING,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        if not settings.TWILIO_SANDBOX and options["auth_token"] == settings.TWILIO_AUTH_TOKEN:
            raise CommandError("refusing to sign sandbox webhooks with the app's production TWILIO_AUTH_TOKEN "
                               "(set TWILIO_SANDBOX=true for a sandbox run, or pass another --auth-token)")
        extra = {"allowed_origins": tuple(options["allowed_origins"] or [settings.PUBLIC_BASE_URL])}
        if options["control_token"]:
            extra["control_token"] = options["control_token"]
        try:
            config = SandboxConfig(**extra,
                host=options["host"],
                port=options["port"],
                account_sid=options["account_sid"],
                auth_token=options["auth_token"],
                api_key_sid=options["api_key_sid"],
                api_key_secret=options["api_key_secret"] if options["api_key_sid"] else None,
                application_sid=options["application_sid"],
                cps=options["cps"],
                time_scale=options["time_scale"],
                seed=options["seed"],
                duplicate_rate=options["duplicate_rate"],
                jitter_s=options["jitter_s"],
                drop_status_rate=options["drop_status_rate"],
                rest_error_rate=options["rest_error_rate"],
                rest_error_kind=options["rest_error_kind"],
                rest_latency_s=options["rest_latency_s"],
                webhook_timeout_s=options["webhook_timeout_s"],
            )
        except ValueError as exc:
            self.stderr.write(f"invalid sandbox options: {exc}")
            raise SystemExit(2) from exc

        def ready(sandbox: Sandbox) -> None:
            self.stdout.write(
                f"Twilio sandbox on {sandbox.base_url} "
                f"(seed {sandbox.seed}, {config.time_scale:g}x, {config.cps:g} CPS)"
                f"\n  TWILIO_API_BASE_URL={sandbox.base_url}"
                f"\n  TWILIO_SANDBOX_CONTROL_TOKEN={sandbox.control_token}"
                f"\n  inspect: {sandbox.base_url}/sandbox/?token={sandbox.control_token}\n  Ctrl-C to stop"
            )
            self.stdout.flush()

        Sandbox(config).serve_forever(on_ready=ready)
        self.stdout.write("Twilio sandbox stopped.")
