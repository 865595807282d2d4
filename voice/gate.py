"""The one dial gate (DESIGN §4 rule 9): whether a contact may be called now, and the claim that turns it into a call.

Every customer call, from every path (the pacer in every mode, an agent's dial-next, preview, callbacks,
retries), is placed by `place()` here; `voice.services.call_create` has no other caller (a test checks). The
rules, all in this module:
- the campaign is running;
- the calling window and days, in the contact's own time zone (an unknown zone is never called);
- do-not-call, global and the campaign's own, at dial time;
- the attempt cap and each outcome's retry delay (`next_attempt_at`);
- one live call per contact (pending contacts only, claimed with SKIP LOCKED; a unique index backs it);
- scheduled callbacks go to the agent who took them, when that agent is ready;
- an abandoned person is called back only on a line of its own, for a ready agent kept free for it (`reserved`);
- the account's calls-per-second budget (a token bucket in one row, shared by every worker);
- the abandonment governor (`voice.pacing.governed_lines`) on the lines per agent.

`held_reason()` says in plain words why nothing is being dialed (the pages show it).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from campaigns.models import AgentSession, Campaign, Contact, DoNotCall
from voice import pacing, services
from voice.models import Call, DialThrottle
from voice.pacer import measured_stats, pacing_settings
from voice.states import State

ZONES_TTL_S = 60.0
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Held:
    """Why a campaign dials nothing (or less) now: a stable code for the pages and a sentence for people."""

    code: str
    text: str

    def as_json(self) -> dict:
        return {"code": self.code, "text": self.text}


# -- calling hours ---------------------------------------------------------------------------------------------


# A campaign that lists no calling days calls Monday to Friday (ISO weekdays).
DEFAULT_WINDOW_DAYS = (1, 2, 3, 4, 5)


def calling_days(campaign: Campaign) -> set[int]:
    """The ISO weekdays the campaign calls on, in the contact's own time zone."""
    return set(campaign.window_days or DEFAULT_WINDOW_DAYS)


def zones_open(zones: set[str], campaign: Campaign, now: dt.datetime) -> set[str]:
    """The time zones in which it is now inside the campaign's calling window (local days and hours)."""
    days = calling_days(campaign)
    open_zones = set()
    for name in zones:
        local = _local(now, name)
        if local is None or local.isoweekday() not in days:
            continue
        if campaign.window_start <= local.time() < campaign.window_end:
            open_zones.add(name)
    return open_zones


def _local(now: dt.datetime, zone: str) -> dt.datetime | None:
    try:
        return now.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return None  # an unknown zone is never called: better late than at 3 a.m.


_zones_cache: dict[int, tuple[float, set[str]]] = {}


def pending_zones(campaign: Campaign) -> set[str]:
    """The time zones of the campaign's contacts waiting to be dialed (cached a minute: they change slowly and
    reading them every tick would dominate the pacer's cost)."""
    hit = _zones_cache.get(campaign.pk)
    if hit and time.monotonic() - hit[0] < ZONES_TTL_S:
        return hit[1]
    zones = set(Contact.objects.filter(campaign=campaign, status=Contact.Status.PENDING)
                .values_list("time_zone", flat=True).distinct())
    _zones_cache[campaign.pk] = (time.monotonic(), zones)
    return zones


# -- the calls-per-second budget ---------------------------------------------------------------------------------


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


# -- who may be called -------------------------------------------------------------------------------------------


def _dialable(campaign: Campaign, now: dt.datetime):
    """Contacts that may be called now, best first (`place` claims them with SKIP LOCKED)."""
    dnc = DoNotCall.objects.filter(Q(campaign__isnull=True) | Q(campaign=campaign)).values("phone")
    return (Contact.objects
            .filter(campaign=campaign, status=Contact.Status.PENDING,
                    time_zone__in=zones_open(pending_zones(campaign), campaign, now))
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .exclude(phone__in=dnc)
            # An abandoned person is owed a call back even past the attempt cap.
            .exclude(Q(attempts__gte=campaign.max_attempts) & Q(abandoned_at__isnull=True))
            .order_by("-priority", F("next_attempt_at").asc(nulls_first=True), "id"))


def _claim(queryset, count: int) -> list[Contact]:
    """Lock up to `count` contacts until commit; rows another worker is claiming now are skipped, never waited for."""
    return list(queryset.select_for_update(skip_locked=True)[:count])


def _reserved_busy(sessions: list[AgentSession]) -> set[int]:
    """Agents with a reserved line in flight: they take nothing else until it ends."""
    return set(Call.objects.filter(dialed_for__in=sessions, reserved=True).exclude(state=State.ENDED)
               .values_list("dialed_for_id", flat=True))


def _idle(sessions: list[AgentSession]) -> list[AgentSession]:
    """Ready agents with no line in flight: the only ones an abandoned person's call back may be dialed for."""
    busy = set(Call.objects.filter(dialed_for__in=sessions).exclude(state=State.ENDED)
               .values_list("dialed_for_id", flat=True))
    return [s for s in sessions if s.pk not in busy]


def place(*, campaign: Campaign, dial_for: list[int | None], now: dt.datetime, cps: float | None = None) -> list[Call]:
    """Claim contacts for the lines the pacer (or an agent) asked for and create their calls, keeping every rule.

    `dial_for` holds, per line, the agent session it is dialed for (None: a pooled line). Caller holds the
    campaign's row lock inside a transaction (the pacer also holds its advisory lock), and each claimed contact
    is locked until commit, so concurrent callers never claim the same contact.
    """
    if campaign.status != Campaign.Status.RUNNING or not dial_for:
        return []
    ready = {s.pk: s for s in AgentSession.objects.filter(
        campaign=campaign, state=AgentSession.State.READY, in_room=True).select_related("agent")}
    kept_free = _reserved_busy(list(ready.values()))
    dial_for = [agent for agent in dial_for if agent not in kept_free]
    cps = settings.TWILIO_CPS if cps is None else cps
    granted = throttle_take(wanted=len(dial_for), cps=cps, now=now)
    dial_for = dial_for[:granted]
    if not dial_for:
        return []
    calls: list[Call] = []
    # An abandoned person first, on a reserved line of an idle agent among those asked for.
    candidates = [ready[a] for a in dict.fromkeys(dial_for) if a in ready]
    for session in _idle(candidates):
        owed = _claim(_dialable(campaign, now).filter(abandoned_at__isnull=False), 1)
        owed = owed[0] if owed else None
        if owed is None:
            break
        calls.append(services.call_create(campaign=campaign, contact=owed, dialed_for=session, reserved=True))
        dial_for = [agent for agent in dial_for if agent != session.pk]
    if not dial_for:
        return calls
    by_user = {s.agent_id: s for s in ready.values()}
    queryset = _dialable(campaign, now).filter(abandoned_at__isnull=True)
    if campaign.callbacks_to_same_agent:
        queryset = queryset.filter(Q(callback_agent__isnull=True) | Q(callback_agent_id__in=list(by_user)))
    for contact, agent_id in zip(_claim(queryset, len(dial_for)), dial_for, strict=False):
        session = ready.get(agent_id) if agent_id is not None else None
        if contact.callback_agent_id and contact.callback_agent_id in by_user:
            session = by_user[contact.callback_agent_id]
        calls.append(services.call_create(campaign=campaign, contact=contact, dialed_for=session))
    return calls


def dial_for_agent(*, campaign: Campaign, session: AgentSession, now: dt.datetime) -> list[Call] | Held:
    """An agent's dial-next: one line in preview mode, else the lines the governor allows minus those in
    flight. Caller holds the campaign's and the session's locks in a transaction; the session is ready."""
    if campaign.status != Campaign.Status.RUNNING:
        return _status_held(campaign)
    in_flight = Call.objects.filter(dialed_for=session).exclude(state=State.ENDED).count()
    if campaign.dial_mode == Campaign.DialMode.PREVIEW:
        wanted = 1
    else:
        wanted = pacing.governed_lines(pacing_settings(campaign), measured_stats(campaign, now=now))
    if in_flight >= wanted:
        return Held("lines_busy", "Your lines are already dialing.")
    calls = place(campaign=campaign, dial_for=[session.pk] * (wanted - in_flight), now=now)
    return calls or held_reason(campaign, now, cps_spent=True) or Held("no_contacts", "No contact can be called now.")


# -- why nothing is dialed -----------------------------------------------------------------------------------------


def wants_stats(campaign: Campaign) -> bool:
    """Whether `held_reason` reads the campaign's measured figures (the governor's report in parallel mode)."""
    return campaign.status == Campaign.Status.RUNNING and campaign.dial_mode == Campaign.DialMode.PARALLEL


def _status_held(campaign: Campaign) -> Held:
    words = {Campaign.Status.DRAFT: "The campaign has not been started.",
             Campaign.Status.PAUSED: "The campaign is paused.",
             Campaign.Status.ENDED: "The campaign has ended."}
    return Held(f"campaign_{campaign.status}", words.get(campaign.status, "The campaign is not running."))


def held_reason(campaign: Campaign, now: dt.datetime, *, stats: pacing.PacingStats | None = None,
                cps_spent: bool = False) -> Held | None:
    """Why a ready agent gets no line now, in plain words, from the gate's own rules; None when dialing can go
    on. `stats` (the pacer's) also reports the governor holding parallel lines back: only parallel mode reads them,
    so callers need not measure them for other modes (`wants_stats`)."""
    if campaign.status != Campaign.Status.RUNNING:
        return _status_held(campaign)
    zones = pending_zones(campaign)
    pending = Contact.objects.filter(campaign=campaign, status=Contact.Status.PENDING)
    if not zones:
        return Held("no_contacts", "No contacts left to dial.")
    if not zones_open(zones, campaign, now):
        return _outside_hours(campaign, pending, now)
    if not _dialable(campaign, now).exists():
        later = (pending.filter(next_attempt_at__gt=now).order_by("next_attempt_at")
                 .values_list("next_attempt_at", flat=True).first())
        if later is not None:
            when = timezone.localtime(later).strftime("%H:%M")
            return Held("waiting_retries", f"Every contact left is waiting for its retry time; the next is at {when}.")
        return Held("no_contacts", "No contacts left to dial now (the rest are outside their calling hours, on "
                                   "the do-not-call list or out of attempts).")
    if cps_spent:
        return Held("cps", "Waiting for the account's calls-per-second budget.")
    if campaign.dial_mode == Campaign.DialMode.PREVIEW:
        return Held("preview", "Preview mode: press Dial next to call the next contact.")
    if stats is not None and campaign.dial_mode == Campaign.DialMode.PARALLEL:
        allowed = pacing.governed_lines(pacing_settings(campaign), stats)
        if allowed < campaign.lines_per_agent:
            return Held("abandon_cap", f"Held back by the abandonment cap: {allowed} of {campaign.lines_per_agent} "
                                       f"lines per agent ({stats.abandon_rate:.1%} abandoned, cap "
                                       f"{campaign.max_abandon_rate:.1%}).")
    return None


def _outside_hours(campaign: Campaign, pending, now: dt.datetime) -> Held:
    """Outside the window everywhere: say when it opens in the zone most contacts are in."""
    common = Counter(pending.values_list("time_zone", flat=True).order_by()[:2000]).most_common(1)
    local = _local(now, common[0][0]) if common else None
    if local is None:
        return Held("outside_hours", "Outside calling hours in every contact's time zone.")
    start = campaign.window_start.strftime("%H:%M")
    if local.isoweekday() not in calling_days(campaign):
        days = ", ".join(WEEKDAYS[d - 1] for d in sorted(calling_days(campaign)))
        return Held("no_calling_today", f"No calling today in most contacts' time zones (calling days: {days}).")
    if local.time() < campaign.window_start:
        return Held("outside_hours", f"Outside calling hours until {start} in most contacts' time zones.")
    return Held("outside_hours", f"Calling hours are over for today in most contacts' time zones "
                                 f"(they start again at {start}).")
