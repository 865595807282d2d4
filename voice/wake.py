"""The dialer's wake-up signal: a leaf module, so services anywhere can ask the pacer to decide now.

`wake()` sets an in-process event after the current transaction commits and sends PostgreSQL `NOTIFY` for the
workers of other processes (`voice.dialer` listens). Waking is an optimisation: a worker that misses one catches
up on its next tick.
"""

from __future__ import annotations

import logging
import threading

from django.db import connection, transaction

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "dialer_wake"

event = threading.Event()


def wake() -> None:
    """Ask every dialer worker to decide now (after the current transaction commits)."""

    def send() -> None:
        event.set()
        if connection.vendor == "postgresql":
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_notify(%s, '')", [NOTIFY_CHANNEL])
            except Exception:  # waking others is an optimisation; their tick catches up anyway
                log.debug("pg_notify failed", exc_info=True)

    transaction.on_commit(send)
