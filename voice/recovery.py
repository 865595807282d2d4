"""What every dialer worker runs besides pacing: the outbox sweep, presence, and the reconciler.

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
        presence.agent_legs_reconcile()
    except Exception:
        log.exception("start-up reconcile failed; the periodic one will retry")


PRESENCE_EVERY_S = 1.0


def recovery_tick(worker) -> None:
    """Every tick: the outbox sweep (a lost effect leaves within a tick and the sweep's grace). Every second:
    presence. Every RECONCILE_EVERY_S: the reconciler. `worker` carries when each last ran (monotonic s)."""
    outbox.effects_sweep()
    now = time.monotonic()
    if now - getattr(worker, "_last_presence", 0.0) >= PRESENCE_EVERY_S:
        worker._last_presence = now
        presence.sessions_sweep()
    if time.monotonic() - worker._last_reconcile > settings.RECONCILE_EVERY_S:
        worker._last_reconcile = time.monotonic()
        reconcile.calls_reconcile()
        presence.agent_legs_reconcile()
