"""The dialer worker (`run_dialer`): every tick, for every running campaign, decide and place new calls.

The decision is `voice.pacing.decide` (pure, shared with the pacing simulator); this module feeds it from
the database and applies what it returns. Any number of workers may run against one PostgreSQL:
- a campaign is decided by one worker at a time (a transaction-scoped advisory lock, skipped if taken);
- contacts are claimed with SELECT ... FOR UPDATE SKIP LOCKED, and a live call per contact is unique in
  the database, so a contact is never dialed twice at once;
- the account's calls-per-second budget is a token bucket in one row (`DialThrottle`), taken under its
  row lock, so all workers together never exceed TWILIO_CPS;
- nothing lives only in memory: a worker that dies mid-tick leaves committed calls (placed after commit,
  reconciled if the REST create never happened) or nothing.

Workers wake at once when an agent becomes ready or a line ends (`wake()`: an in-process event plus
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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Avg, Count, F, Q, StdDev
from django.db.models.expressions import RawSQL
from django.utils import timezone

from campaigns.models import AgentSession, Campaign, Contact, DoNotCall
from campaigns.selectors import ABANDON_WINDOW, abandonment
from voice import pacing, services
from voice.models import Call, DialThrottle
from voice.states import Outcome, State

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "dialer_wake"
STATS_TTL_S = 30.0
ZONES_TTL_S = 60.0
RECONCILE_EVERY_S = 15.0
ABANDONED_PRIORITY = services.ABANDONED_PRIORITY_BOOST

_wake_event = threading.Event()


def wake() -> None:
    """Ask every dialer worker to decide now (after the current transaction commits)."""
    # One wake-up per transaction is enough (a line ended and its agent is free: one NOTIFY), unless the one
    # queued sits in a savepoint that could still be rolled back without this caller's.
    if connection.in_atomic_block and any(func is _send_wake and sids <= set(connection.savepoint_ids)
                                          for sids, func, _robust in connection.run_on_commit):
        return
    transaction.on_commit(_send_wake)


def _send_wake() -> None:
    _wake_event.set()
    if connection.vendor == "postgresql":
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, '')", [NOTIFY_CHANNEL])
        except Exception:  # waking others is an optimisation; their tick catches up anyway
            log.debug("pg_notify failed", exc_info=True)


# -- the snapshot the decision reads ----------------------------------------------------------------


def _ages(now: dt.datetime, *fields: str) -> tuple[dict, tuple[str, ...]]:
    """Columns giving each timestamp's age in seconds. PostgreSQL computes them (parsing thousands of
    timestamps per tick in Python costs more than the pacing decision); elsewhere they are read as is."""
    if connection.vendor == "postgresql":
        # The column names are this module's constants, never input: no injection through RawSQL.
        ages = {f"{name}_s": RawSQL(f"COALESCE(EXTRACT(EPOCH FROM (%s - {name})), 0)::float8", [now])  # noqa: S611
                for name in fields}
        return ages, tuple(ages)
    return {}, fields


def _seconds(value, now: dt.datetime) -> float:
    if isinstance(value, dt.datetime):
        return max(0.0, (now - value).total_seconds())
    return max(0.0, value or 0.0)


def _agent_view(pk: int, state: str, in_room: bool, state_age, now: dt.datetime) -> pacing.AgentView:
    if state == AgentSession.State.READY and not in_room:
        state = AgentSession.State.PAUSED  # no softphone in the room: cannot take a customer
    return pacing.AgentView(agent_id=pk, state=state, state_s=_seconds(state_age, now))


def _line_view(pk: int, state: str, answered_by: str, ringing_age, answered_age, dialed_for: int | None,
               now: dt.datetime) -> pacing.LineView:
    if state in (State.CREATED, State.DIALING):
        kind = "dialing"
    elif state == State.RINGING:
        kind = "ringing"
    elif answered_by:
        kind = "holding"  # a human waiting for an agent
    else:
        kind = "answered"
    return pacing.LineView(line_id=pk, state=kind, ringing_s=_seconds(ringing_age, now),
                           answered_s=_seconds(answered_age, now), agent_id=dialed_for)


def pacing_settings(campaign: Campaign) -> pacing.PacingSettings:
    return pacing.PacingSettings(
        mode=campaign.dial_mode, lines_per_agent=campaign.lines_per_agent, abandon_cap=campaign.max_abandon_rate,
        min_ring_s=float(campaign.min_ring_s), ring_timeout_s=float(campaign.ring_timeout_s),
        max_hold_s=campaign.max_hold_s,
    )


def measured_stats(campaign: Campaign, *, now: dt.datetime | None = None, window: int = 2000) -> pacing.PacingStats:
    """The campaign's own figures from its last `window` finished calls, blended with the reference prior;
    abandoned / human-answered counts over the rolling 30 days (the regulated window)."""
    now = now or timezone.now()
    recent_ids = list(Call.objects.filter(campaign=campaign, state=State.ENDED).order_by("-ended_at")
                      .values_list("pk", flat=True)[:window])
    recent = Call.objects.filter(pk__in=recent_ids)
    counts = recent.aggregate(
        dials=Count("pk"),
        humans=Count("pk", filter=Q(answered_by="human")),
        machines=Count("pk", filter=Q(answered_by__startswith="machine") | Q(answered_by="fax")),
        no_answer=Count("pk", filter=Q(outcome=Outcome.NO_ANSWER)),
        busy_failed=Count("pk", filter=Q(outcome__in=[Outcome.BUSY, Outcome.FAILED, Outcome.INVALID_NUMBER])),
        talked=Count("pk", filter=Q(outcome=Outcome.TALKED)),
        talk_mean=Avg("duration_s", filter=Q(outcome=Outcome.TALKED)),
        talk_sd=StdDev("duration_s", filter=Q(outcome=Outcome.TALKED)),
        amd_mean=Avg("amd_duration_ms", filter=Q(answered_by="human")),
        amd_sd=StdDev("amd_duration_ms", filter=Q(answered_by="human")),
    )
    regulated = abandonment(campaign=campaign, since=now - ABANDON_WINDOW)
    prior = pacing.REFERENCE_PRIOR
    dials = counts["dials"] or 0
    share = (lambda n: n / dials) if dials else (lambda n: 0.0)
    talk_mean = float(counts["talk_mean"] or prior.talk_mean_s)
    talk_cv = float(counts["talk_sd"] / talk_mean) if counts["talk_sd"] and talk_mean else prior.talk_cv
    measured = pacing.PacingStats(
        human=share(counts["humans"]), machine=share(counts["machines"]), no_answer=share(counts["no_answer"]),
        busy_failed=share(counts["busy_failed"]),
        amd_human_mean_s=(counts["amd_mean"] or prior.amd_human_mean_s * 1000) / 1000,
        amd_human_sd_s=(counts["amd_sd"] or prior.amd_human_sd_s * 1000) / 1000,
        talk_mean_s=talk_mean, talk_cv=talk_cv,
        dials=dials, humans=regulated["humans"], machines=counts["machines"], conversations=counts["talked"],
        abandoned=regulated["abandoned"],
    )
    return pacing.blend(measured, prior)


def zones_open(zones: set[str], campaign: Campaign, now: dt.datetime) -> set[str]:
    """The time zones in which it is now inside the campaign's calling window (local days and hours)."""
    days = set(campaign.window_days or [1, 2, 3, 4, 5])
    open_zones = set()
    for name in zones:
        try:
            local = now.astimezone(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue  # an unknown zone is never called: better late than at 3 a.m.
        if local.isoweekday() in days and campaign.window_start <= local.time() < campaign.window_end:
            open_zones.add(name)
    return open_zones


# -- the CPS budget -------------------------------------------------------------------------------------


def throttle_take(*, wanted: int, cps: float, now: dt.datetime | None = None, key: str = "account") -> int:
    """Take up to `wanted` call slots from the account's budget (refilled at `cps`, at most one second's
    worth banked). Caller is inside a transaction; the row lock serialises every worker."""
    if wanted <= 0:
        return 0
    now = now or timezone.now()
    capacity = max(1.0, cps)
    DialThrottle.objects.get_or_create(key=key, defaults={"tokens": capacity, "updated_at": now})
    bucket = DialThrottle.objects.select_for_update(no_key=True).get(key=key)
    elapsed = max(0.0, (now - bucket.updated_at).total_seconds())
    tokens = min(capacity, bucket.tokens + elapsed * cps)
    granted = min(wanted, int(tokens))
    bucket.tokens = tokens - granted
    bucket.updated_at = now
    bucket.save(update_fields=["tokens", "updated_at"])
    return granted


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
        self._zones: dict[int, tuple[float, set[str]]] = {}
        self._last_reconcile = 0.0

    # -- caches: statistics and time zones change slowly; recomputing them every tick would dominate

    def _cached_stats(self, campaign: Campaign) -> pacing.PacingStats:
        hit = self._stats.get(campaign.pk)
        if hit and time.monotonic() - hit[0] < STATS_TTL_S:
            return hit[1]
        stats = measured_stats(campaign)
        self._stats[campaign.pk] = (time.monotonic(), stats)
        return stats

    def _cached_zones(self, campaign: Campaign) -> set[str]:
        hit = self._zones.get(campaign.pk)
        if hit and time.monotonic() - hit[0] < ZONES_TTL_S:
            return hit[1]
        zones = set(Contact.objects.filter(campaign=campaign, status=Contact.Status.PENDING)
                    .values_list("time_zone", flat=True).distinct())
        self._zones[campaign.pk] = (time.monotonic(), zones)
        return zones

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
        ages, (state_age,) = _ages(now, "state_changed_at")
        rows = (AgentSession.objects.filter(campaign_id__in=campaigns).exclude(state=AgentSession.State.OFFLINE)
                .annotate(**ages).values_list("campaign_id", "pk", "state", "in_room", state_age))
        for campaign_id, *agent in rows:
            sessions[campaign_id].append(_agent_view(*agent, now))
        lines = defaultdict(list)
        ages, (ring_age, answer_age) = _ages(now, "ringing_at", "answered_at")
        live = (Call.objects.filter(campaign_id__in=campaigns, bridged_to__isnull=True)
                .exclude(state__in=[State.ENDED, State.RELEASING, State.VOICEMAIL]).annotate(**ages)
                .values_list("campaign_id", "pk", "state", "answered_by", ring_age, answer_age, "dialed_for_id"))
        for campaign_id, *line in live:
            lines[campaign_id].append(_line_view(*line, now))
        decisions = {}
        for pk, campaign in campaigns.items():
            if not sessions[pk]:
                continue
            decision = pacing.decide(pacing_settings(campaign), self._cached_stats(campaign), sessions[pk], lines[pk])
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
        if time.monotonic() - self._last_reconcile > RECONCILE_EVERY_S:
            self._last_reconcile = time.monotonic()
            services.calls_reconcile()
        return report

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
            granted = throttle_take(wanted=len(dial_for), cps=cps, now=now)
            placed = _place(campaign, dial_for[:granted], self._cached_zones(campaign), now)
        return placed, released

    # -- the loop

    def run(self, stop: threading.Event) -> None:
        listener = _Listener() if connection.vendor == "postgresql" else None
        if listener:
            listener.start()
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:
                    log.exception("dialer tick failed")
                finally:
                    close_old_connections()
                _wake_event.wait(self.tick_s)
                _wake_event.clear()
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


def _dialable(campaign: Campaign, zones: set[str], now: dt.datetime):
    open_zones = zones_open(zones, campaign, now)
    dnc = DoNotCall.objects.filter(Q(campaign__isnull=True) | Q(campaign=campaign)).values("phone")
    return (Contact.objects.select_for_update(skip_locked=True)
            .filter(campaign=campaign, status=Contact.Status.PENDING, time_zone__in=open_zones)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .exclude(phone__in=dnc)
            # An abandoned contact is owed its call back even past the attempt cap.
            .exclude(Q(attempts__gte=campaign.max_attempts) & Q(priority__lt=ABANDONED_PRIORITY)))


def _place(campaign: Campaign, dial_for: list[int | None], zones: set[str], now: dt.datetime) -> int:
    """Claim contacts and create their calls. Caller holds the campaign's advisory lock in a transaction.

    Scheduled callbacks go to their agent when that agent is ready (else wait, or go to anyone when the
    campaign says so); abandoned contacts are called back first, on a line of their own.
    """
    if not dial_for:
        return 0
    ready = {s.pk: s for s in AgentSession.objects.filter(campaign=campaign, state=AgentSession.State.READY,
                                                          in_room=True).select_related("agent")}
    by_user = {s.agent_id: s for s in ready.values()}
    queryset = _dialable(campaign, zones, now)
    if campaign.callbacks_to_same_agent:
        queryset = queryset.filter(Q(callback_agent__isnull=True) | Q(callback_agent_id__in=list(by_user)))
    contacts = list(queryset.order_by("-priority", F("next_attempt_at").asc(nulls_first=True), "id")
                    [:len(dial_for)])
    placed = 0
    for contact, agent_id in zip(contacts, dial_for, strict=False):
        session = ready.get(agent_id) if agent_id is not None else None
        if contact.callback_agent_id and contact.callback_agent_id in by_user:
            session = by_user[contact.callback_agent_id]
        services.call_create(campaign=campaign, contact=contact, dialed_for=session)
        placed += 1
    return placed


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
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        _wake_event.set()
        except Exception:
            log.warning("dialer LISTEN stopped; ticking only", exc_info=True)
