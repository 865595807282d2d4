"""What every dialer worker runs each tick besides pacing: the outbox sweep, presence, and the reconciler.

Kept apart from the worker loop so the demo, `run_dialer` and any future worker share one list.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

from voice import outbox, presence, reconcile

log = logging.getLogger(__name__)


def recovery_start() -> None:
    """A worker (or the demo) starting: after a crash or restart whatever was in flight may be a phantom line
    (Twilio forgot it, or its last callback was lost), so every live call is fetched, not only overdue ones."""
    try:
        outbox.effects_sweep()
        reconcile.calls_reconcile(everything=True)
    except Exception:
        log.exception("start-up reconcile failed; the periodic one will retry")


def recovery_tick(worker) -> None:
    """`worker` carries `_last_reconcile` (monotonic seconds)."""
    outbox.effects_sweep()
    presence.sessions_sweep()
    if time.monotonic() - worker._last_reconcile > settings.RECONCILE_EVERY_S:
        worker._last_reconcile = time.monotonic()
        reconcile.calls_reconcile()
