"""`python manage.py run_dialer`: the pacer worker. Run as many as you like against one PostgreSQL."""

import gc
import signal
import threading

from django.core.management.base import BaseCommand

from voice.dialer import Dialer


class Command(BaseCommand):
    help = "Dial for every running campaign: decide lines per tick, place calls, release and reconcile."

    def add_arguments(self, parser):
        parser.add_argument("--tick", type=float, default=0.25, help="seconds between ticks when nothing wakes it")

    def handle(self, *args, tick, **options):
        # Production refuses unsafe settings (the demo SECRET_KEY, no TWILIO_AUTH_TOKEN): dialer/checks.py, by tag,
        # as this app sits below the project's wiring.
        self.check(tags=["production"], include_deployment_checks=True)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"dialer running (tick {tick}s); Ctrl-C stops")
        # Everything loaded so far (Django, the app) lives as long as the process: out of the collector's
        # sight, a full collection no longer walks it in the middle of a tick (it added 35-50 ms to one
        # tick in a hundred at 1,000 agents: benchmarks/pacer_tick.py).
        gc.freeze()
        Dialer(tick_s=tick).run(stop)
        self.stdout.write("dialer stopped")
