"""Simulated time: seconds since the sandbox started, running `time_scale` times faster than the wall clock."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime


class SimClock:
    """Monotonic simulated clock whose speed can change while sleepers wait.

    Changing the scale rebases the clock (simulated time never jumps) and wakes every sleeper so it
    recomputes its real-time wait at the new speed.
    """

    def __init__(self, time_scale: float) -> None:
        self._scale = time_scale
        self._wall0 = time.monotonic()
        self._sim0 = 0.0
        self._started_at = datetime.now(UTC)
        self._rescaled = asyncio.Event()

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> float:
        return self._sim0 + (time.monotonic() - self._wall0) * self._scale

    def set_scale(self, time_scale: float) -> None:
        if time_scale == self._scale:
            return
        self._sim0, self._wall0 = self.now(), time.monotonic()
        self._scale = time_scale
        old, self._rescaled = self._rescaled, asyncio.Event()
        old.set()

    def datetime_at(self, sim_t: float | None = None) -> datetime:
        """The simulated wall-clock moment: the real start time plus simulated seconds elapsed."""
        return self._started_at + timedelta(seconds=self.now() if sim_t is None else sim_t)

    def rfc2822(self, sim_t: float | None = None) -> str:
        """Twilio's date format, e.g. `Tue, 31 Aug 2010 20:36:28 +0000`."""
        return format_datetime(self.datetime_at(sim_t).replace(microsecond=0), usegmt=False)

    async def sleep(self, sim_s: float) -> None:
        await self.sleep_until(self.now() + sim_s)

    async def sleep_until(self, sim_t: float, wake: asyncio.Event | None = None) -> bool:
        """Wait until simulated time `sim_t`, or until `wake` is set. Returns True if woken early."""
        while True:
            if wake is not None and wake.is_set():
                return True
            remaining = sim_t - self.now()
            if remaining <= 0:
                return False
            rescaled = self._rescaled
            waiters = [asyncio.ensure_future(rescaled.wait())]
            if wake is not None:
                waiters.append(asyncio.ensure_future(wake.wait()))
            try:
                await asyncio.wait(waiters, timeout=remaining / self._scale, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
