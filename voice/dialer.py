"""The dialer worker (`run_dialer`): every tick, for every running campaign, decide and place new calls.

The decision is `voice.pacing.decide` (pure, shared with the pacing simulator), fed by `voice.pacer`'s
snapshot; the calls are placed by the dial gate (`voice.gate`), which keeps every rule. Any number of workers
may run against one PostgreSQL:
- a campaign is decided by one worker at a time (a transaction-scoped advisory lock, skipped if taken);
- contacts are claimed with SELECT ... FOR UPDATE SKIP LOCKED, and a live call per contact is unique in
  the database, so a contact is never dialed twice at once;
- the account's calls-per-second budget is shared by every worker (`voice.gate.throttle_take`);
- nothing lives only in memory: a worker that dies mid-tick leaves committed calls (placed after commit,
  reconciled if the REST create never happened) or nothing.

Workers wake at once when an agent becomes ready or a line ends (`voice.wake`: an in-process event plus
PostgreSQL NOTIFY for other processes) and otherwise tick several times a second.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from campaigns.models import AgentSession, Campaign
from realtime import events
from voice import gate, pacer, pacing, services, wake
from voice.models import Call
from voice.recovery import recovery_start, recovery_tick
from voice.states import State

log = logging.getLogger(__name__)

STATS_TTL_S = 30.0
HELD_EVERY_S = 5.0


# -- the worker -----------------------------------------------------------------------------------------


@dataclass
class TickReport:
    campaigns: int = 0
    placed: int = 0
    released: int = 0
    decide_ms: float = 0.0
    errors: list[str] = field(default_factory=list)


class Dialer:
    def __init__(self, *, tick_s: float = 0.25, cps: float | None = None):
        self.tick_s = tick_s
        self.cps = cps
        self._stats: dict[int, tuple[float, pacing.PacingStats]] = {}
        self._last_reconcile = 0.0
        self._last_explained = 0.0
        self._held: dict[int, gate.Held | None] = {}

    # -- caches: statistics and time zones change slowly; recomputing them every tick would dominate

    def _cached_stats(self, campaign: Campaign) -> pacing.PacingStats:
        hit = self._stats.get(campaign.pk)
        if hit and time.monotonic() - hit[0] < STATS_TTL_S:
            return hit[1]
        stats = pacer.measured_stats(campaign)
        self._stats[campaign.pk] = (time.monotonic(), stats)
        return stats

    # -- one tick

    def decide_all(
        self, now: dt.datetime, *, only: int | None = None
    ) -> dict[int, tuple[Campaign, pacing.PacingDecision]]:
        """Decide every running campaign (or only the one given) from one snapshot: three queries whatever
        the floor size."""
        running = Campaign.objects.filter(status=Campaign.Status.RUNNING)
        if only is not None:
            running = running.filter(pk=only)
        campaigns = {c.pk: c for c in running}
        if not campaigns:
            return {}
        # Plain tuples, not model instances: at a thousand agents the ORM's objects cost more than the decision.
        sessions = defaultdict(list)
        ages, (state_age,) = pacer.ages(now, "state_changed_at")
        rows = (AgentSession.objects.filter(campaign_id__in=campaigns).exclude(state=AgentSession.State.OFFLINE)
                .annotate(**ages).values_list("campaign_id", "pk", "state", "in_room", state_age))
        for campaign_id, *agent in rows:
            sessions[campaign_id].append(pacer.agent_view(*agent, now))
        lines = defaultdict(list)
        ages, (ring_age, answer_age) = pacer.ages(now, "ringing_at", "answered_at")
        live = (Call.objects.filter(campaign_id__in=campaigns, bridged_to__isnull=True)
                .exclude(state__in=[State.ENDED, State.RELEASING, State.VOICEMAIL]).annotate(**ages)
                .values_list("campaign_id", "pk", "state", "answered_by", ring_age, answer_age, "dialed_for_id"))
        for campaign_id, *line in live:
            lines[campaign_id].append(pacer.line_view(*line, now))
        decisions = {}
        for pk, campaign in campaigns.items():
            if not sessions[pk]:
                continue
            stats = self._cached_stats(campaign)
            decision = pacing.decide(pacer.pacing_settings(campaign), stats, sessions[pk], lines[pk])
            if decision.dial or decision.release:
                decisions[pk] = (campaign, decision)
        return decisions

    def tick(self) -> TickReport:
        report = TickReport()
        now = timezone.now()
        started = time.perf_counter()
        decisions = self.decide_all(now)
        report.decide_ms = (time.perf_counter() - started) * 1000
        report.campaigns = len(decisions)
        for campaign, decision in decisions.values():
            try:
                placed, released = self._apply(campaign, decision.release, now)
                report.placed += placed
                report.released += released
            except Exception as exc:
                log.exception("dialer: campaign %s failed this tick", campaign.pk)
                report.errors.append(f"campaign {campaign.pk}: {exc}")
        report.released += services.calls_release_due()
        services.calls_abandon_overdue()
        if time.monotonic() - self._last_explained > HELD_EVERY_S:
            self._last_explained = time.monotonic()
            self.explain(now)
        recovery_tick(self)
        return report

    def explain(self, now: dt.datetime) -> None:
        """Tell the consoles and wallboards, in plain words, why campaigns with ready agents dial nothing (or
        less): an event when the reason changes, from the gate's own rules."""
        waiting = set(AgentSession.objects.filter(state=AgentSession.State.READY)
                      .values_list("campaign_id", flat=True).distinct())
        for campaign in Campaign.objects.filter(pk__in=waiting):
            stats = self._cached_stats(campaign) if gate.wants_stats(campaign) else None
            held = gate.held_reason(campaign, now, stats=stats)
            if self._held.get(campaign.pk, "unknown") != held:
                self._held[campaign.pk] = held
                events.publish_dialing(campaign.pk, held.as_json() if held else None)

    def _apply(self, campaign: Campaign, release: tuple[int, ...], now: dt.datetime) -> tuple[int, int]:
        """Decide again under the campaign's lock (another worker may have just dialed) and place calls."""
        released = 0
        for call_id in release:
            _, result = services.call_apply(call_id=call_id, fact=services.states.Release())
            released += int(result.changed)
        with transaction.atomic():
            if not _try_campaign_lock(campaign.pk):
                return 0, released
            # The row lock (campaign first, as everywhere) serialises this with ending or pausing it.
            campaign = Campaign.objects.select_for_update(no_key=True).get(pk=campaign.pk)
            if campaign.status != Campaign.Status.RUNNING:
                return 0, released
            # This campaign's snapshot only: re-reading the whole floor for each campaign that acts would make
            # a tick cost grow with the square of the number of campaigns.
            fresh = self.decide_all(now, only=campaign.pk).get(campaign.pk)
            if fresh is None or not fresh[1].dial:
                return 0, released
            dial_for = list(fresh[1].dial_for)
            cps = self.cps if self.cps is not None else settings.TWILIO_CPS
            placed = len(gate.place(campaign=campaign, dial_for=dial_for, now=now, cps=cps))
        return placed, released

    # -- the loop

    def run(self, stop: threading.Event) -> None:
        listener = _Listener() if connection.vendor == "postgresql" else None
        if listener:
            listener.start()
        recovery_start()
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:
                    log.exception("dialer tick failed")
                finally:
                    close_old_connections()
                wake.event.wait(self.tick_s)
                wake.event.clear()
        finally:
            if listener:
                listener.stop()


def _try_campaign_lock(campaign_id: int) -> bool:
    if connection.vendor != "postgresql":
        return True  # the demo's SQLite runs one worker
    key = zlib.crc32(b"dialer.campaign") << 20 ^ campaign_id
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])
        return bool(cursor.fetchone()[0])


class _Listener:
    """LISTEN for other processes' wake-ups on a connection of its own (psycopg), and set the event."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dialer-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        try:
            with psycopg.connect(**params, autocommit=True) as conn:
                conn.execute(f"LISTEN {wake.NOTIFY_CHANNEL}")
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        wake.event.set()
        except Exception:
            log.warning("dialer LISTEN stopped; ticking only", exc_info=True)
