"""`python manage.py run_dialer`: the pacer worker. Run as many as you like against one PostgreSQL."""

import signal
import threading

from django.core.management.base import BaseCommand

from voice.dialer import Dialer


class Command(BaseCommand):
    help = "Dial for every running campaign: decide lines per tick, place calls, release and reconcile."

    def add_arguments(self, parser):
        parser.add_argument("--tick", type=float, default=0.25, help="seconds between ticks when nothing wakes it")

    def handle(self, *args, tick, **options):
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"dialer running (tick {tick}s); Ctrl-C stops")
        Dialer(tick_s=tick).run(stop)
        self.stdout.write("dialer stopped")
