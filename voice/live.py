"""Reads for the live pages (agent console, wallboard): who may watch what, the snapshots a socket sends on
connect, the stats and the contact card. Read-only; the event shapes come from `realtime.events` so a snapshot
and an event never differ.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from campaigns.exceptions import NotAllowed
from campaigns.models import AgentSession, Campaign
from campaigns.services import access_campaign, user_is_manager
from realtime import events
from voice import gate, pacer
from voice.models import Call, Disposition, Recording, Supervision, human_answered_q
from voice.selectors import abandonment
from voice.states import Outcome, State
from voice.supervision import notice_for

# Ended lines stay on the agent's grid (and the wallboard's list) this long after a (re)connect.
RECENT_ENDED = dt.timedelta(minutes=2)
RECENT_ENDED_LIMIT = 30
HISTORY_LIMIT = 10


def start_of_today(now: dt.datetime | None = None) -> dt.datetime:
    now = timezone.localtime(now or timezone.now())
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


# -- who may watch ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    campaign_id: int
    session_id: int | None  # the watcher's own agent session in the campaign, if they ever joined it
    manager: bool


def console_access(*, user, campaign_id: int) -> Access | None:
    """Members of the campaign and managers may watch a console; None for everyone else (and no campaign)."""
    if not user.is_authenticated:
        return None
    try:
        campaign = access_campaign(user, campaign_id)
    except NotAllowed:
        return None
    session_id = AgentSession.objects.filter(agent=user, campaign=campaign).values_list("pk", flat=True).first()
    return Access(campaign_id=campaign.pk, session_id=session_id, manager=user_is_manager(user))


def wallboard_access(*, user, campaign_id: int) -> Access | None:
    """Only managers (the campaigns.manage_campaigns permission) watch a wallboard."""
    access = console_access(user=user, campaign_id=campaign_id)
    if access is None or not access.manager:
        return None
    return access


# -- stats ------------------------------------------------------------------------------------------------


def _talk_seconds(calls, now: dt.datetime) -> int:
    total = 0.0
    for connected_at, ended_at in calls.filter(connected_at__isnull=False).values_list("connected_at", "ended_at"):
        total += ((ended_at or now) - connected_at).total_seconds()
    return round(total)


def agent_stats_today(*, session: AgentSession | None, now: dt.datetime | None = None) -> dict:
    """The agent's own day in this campaign: lines dialed for them, people they reached, conversations they
    recorded and time on the phone with someone."""
    now = now or timezone.now()
    if session is None:
        return {"dials": 0, "humans": 0, "conversations": 0, "talk_s": 0}
    today = start_of_today(now)
    dials = Call.objects.filter(dialed_for=session, created_at__gte=today).count()
    reached = Call.objects.filter(bridged_to=session, bridged_at__gte=today)
    conversations = Disposition.objects.filter(
        agent_id=session.agent_id, call__campaign_id=session.campaign_id, created_at__gte=today,
        code__is_conversation=True).count()
    return {"dials": dials, "humans": reached.count(), "conversations": conversations,
            "talk_s": _talk_seconds(reached, now)}


def _counts(campaign: Campaign, since: dt.datetime) -> dict:
    counts = Call.objects.filter(campaign=campaign, created_at__gte=since).aggregate(
        dials=Count("pk"), humans=Count("pk", filter=human_answered_q()))
    counts["conversations"] = Disposition.objects.filter(
        call__campaign=campaign, created_at__gte=since, code__is_conversation=True).count()
    return counts


def wallboard_stats(*, campaign: Campaign, now: dt.datetime | None = None) -> dict:
    """Abandonment today and over the rolling 30 days against the cap; dials, humans and conversations today
    and in the last hour (the per-hour rate); talk time today."""
    now = now or timezone.now()
    today = start_of_today(now)
    today_counts = _counts(campaign, today)
    today_counts["talk_s"] = _talk_seconds(Call.objects.filter(campaign=campaign, connected_at__gte=today), now)
    abandon_today = abandonment(campaign=campaign, since=today)
    abandon_30d = abandonment(campaign=campaign)
    return {
        "as_of": now.isoformat(),
        "abandonment": {
            "cap": campaign.max_abandon_rate,
            "today": {k: abandon_today[k] for k in ("abandoned", "humans", "rate")},
            "rolling_30d": {k: abandon_30d[k] for k in ("abandoned", "humans", "rate")},
        },
        "today": today_counts,
        "last_hour": _counts(campaign, now - dt.timedelta(hours=1)),
    }


def dialing_now(*, campaign: Campaign, now: dt.datetime) -> dict:
    """Why ready agents get no line right now (the gate's own words), as the `dialing` event the worker sends
    when it changes."""
    stats = pacer.measured_stats(campaign, now=now) if gate.wants_stats(campaign) else None
    held = gate.held_reason(campaign, now, stats=stats)
    return events.dialing_event(campaign.pk, held.as_json() if held else None)


# -- snapshots --------------------------------------------------------------------------------------------


def _calls(queryset) -> list[dict]:
    return [events.call_event(c) for c in queryset.select_related("contact", "campaign")]


def console_snapshot(*, campaign_id: int, session_id: int | None, now: dt.datetime | None = None) -> dict:
    """What an agent console needs on (re)connect; then events keep it current."""
    now = now or timezone.now()
    campaign = Campaign.objects.get(pk=campaign_id)
    session = (AgentSession.objects.select_related("agent").filter(pk=session_id).first()
               if session_id else None)
    calls: list[dict] = []
    if session is not None:
        mine = Call.objects.filter(Q(dialed_for=session) | Q(bridged_to=session))
        live = mine.exclude(state=State.ENDED)
        recent = mine.filter(state=State.ENDED, ended_at__gte=now - RECENT_ENDED).order_by("-ended_at")
        # The talk waiting for a disposition stays on screen however old it is (a reload during wrap-up).
        undisposed = Call.objects.filter(bridged_to=session, state=State.ENDED, outcome=Outcome.TALKED,
                                         disposition__isnull=True).order_by("-ended_at")[:1]
        seen: dict[int, dict] = {}
        for queryset in (live, recent[:RECENT_ENDED_LIMIT], undisposed):
            for event in _calls(queryset):
                seen[event["id"]] = event
        calls = sorted(seen.values(), key=lambda e: e["id"])
    live_ids = [c["id"] for c in calls if c["state"] != State.ENDED]
    recordings = [events.recording_event(r, r.call) for r in Recording.objects.filter(
        call_id__in=live_ids).select_related("call")]
    # A manager supervising the talk right now: the agent's notice survives a reload (as SUPERVISION_NOTICE allows).
    supervisions = [events.supervision_event(s, s.call, notice) for s in Supervision.objects.filter(
        call_id__in=live_ids, ended_at__isnull=True).select_related("call", "manager") if (notice := notice_for(s))]
    return {
        "type": "snapshot",
        "scope": "console",
        "server_time": now.isoformat(),
        "campaign": events.campaign_event(campaign),
        "session": events.agent_event(session) if session else None,
        "calls": calls,
        "recordings": recordings,  # so a reload mid-talk still offers pause / resume
        "supervisions": supervisions,
        "stats": agent_stats_today(session=session, now=now),
        "dialing": dialing_now(campaign=campaign, now=now),
    }


def wallboard_snapshot(*, campaign_id: int, now: dt.datetime | None = None) -> dict:
    """Every agent who is on (or was on today), every live line and the campaign's numbers."""
    now = now or timezone.now()
    campaign = Campaign.objects.get(pk=campaign_id)
    sessions = (AgentSession.objects.select_related("agent").filter(campaign=campaign)
                .filter(~Q(state=AgentSession.State.OFFLINE) | Q(state_changed_at__gte=start_of_today(now)))
                .order_by("agent__username"))
    calls = Call.objects.filter(campaign=campaign).filter(
        ~Q(state=State.ENDED) | Q(ended_at__gte=now - RECENT_ENDED)).order_by("-id")[:500]
    return {
        "type": "snapshot",
        "scope": "wallboard",
        "server_time": now.isoformat(),
        "campaign": events.campaign_event(campaign),
        "agents": [events.agent_event(s) for s in sessions],
        "calls": sorted(_calls(calls), key=lambda e: e["id"]),
        # Who supervises which talk now (the wallboards' view carries no notice for the agent).
        "supervisions": [events.supervision_event(s, s.call, "") for s in Supervision.objects.filter(
            call__campaign=campaign, ended_at__isnull=True).select_related("call", "manager")],
        "stats": wallboard_stats(campaign=campaign, now=now),
        "dialing": dialing_now(campaign=campaign, now=now),
    }


# -- the contact card ---------------------------------------------------------------------------------------


def access_call(user, *, campaign_id: int, call_id: int) -> Call:
    """A call of the campaign that the user may see: the agent it was dialed for or bridged to, or a manager."""
    campaign = access_campaign(user, campaign_id)
    call = (Call.objects.select_related("contact", "campaign", "dialed_for", "bridged_to")
            .filter(pk=call_id, campaign=campaign).first())
    if call is None:
        raise NotAllowed("no such call")
    agents = {s.agent_id for s in (call.dialed_for, call.bridged_to) if s is not None}
    if user.pk in agents or user_is_manager(user):
        return call
    raise NotAllowed("this call is not yours")


def contact_card(*, call: Call) -> dict:
    """The screen pop: who this is, where (their local time zone), and what happened on earlier attempts."""
    from campaigns.phones import time_zone_for

    contact = call.contact
    earlier = (Call.objects.filter(contact=contact).exclude(pk=call.pk)
               .select_related("disposition__code", "disposition__agent", "bridged_to__agent")
               .order_by("-created_at")[:HISTORY_LIMIT])
    history = []
    for past in earlier:
        disposition = getattr(past, "disposition", None)
        agent = disposition.agent if disposition else (past.bridged_to.agent if past.bridged_to else None)
        history.append({
            "call_id": past.pk,
            "at": past.created_at.isoformat(),
            "outcome": past.outcome,
            "state": past.state,
            "duration_s": past.duration_s,
            "agent": (agent.get_full_name() or agent.get_username()) if agent else "",
            "disposition": disposition.code.label if disposition else "",
            "notes": disposition.notes if disposition else "",
            "callback_at": disposition.callback_at.isoformat() if disposition and disposition.callback_at else None,
        })
    try:
        guessed_zone = "" if contact.time_zone else time_zone_for(contact.phone)
    except Exception:  # an odd number must not break the card
        guessed_zone = ""
    return {
        "call": events.call_event(call),
        "contact": {
            **events.contact_brief(contact),
            "time_zone": contact.time_zone or guessed_zone,
            "time_zone_guessed": bool(guessed_zone),
            "email": contact.email,
            "custom_fields": contact.custom_fields or {},
            "attempts": contact.attempts,
            "last_outcome": contact.last_outcome,
        },
        "history": history,
    }
