"""Test data in one place. Plain functions: keyword-only, sensible defaults, saved rows."""

from __future__ import annotations

import datetime as dt
import importlib
import itertools

from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from campaigns.models import AgentSession, Campaign, Contact, DispositionCode

_seq = itertools.count(1)

PASSWORD = "correct-horse-battery"


def ensure_roles() -> None:
    """The role groups and their permissions, as the migrations leave them (a transactional test elsewhere may
    have flushed them)."""
    if Permission.objects.filter(group__name="Managers", codename="manage_campaigns").exists() and \
            Group.objects.filter(name="Administrators").exists():
        return
    importlib.import_module("campaigns.migrations.0003_groups").sync_groups(django_apps)
    importlib.import_module("campaigns.migrations.0005_roles").add_roles(django_apps, None)
    importlib.import_module("voice.migrations.0005_recording_permissions").grant(django_apps)


def make_user(*, username: str | None = None, manager: bool = False, admin: bool = False, **fields):
    """An agent by default; a manager or an administrator (staff, so the admin opens) on request."""
    username = username or f"user{next(_seq)}"
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)
    if manager or admin:
        ensure_roles()
    group, _ = Group.objects.get_or_create(name="Administrators" if admin else "Managers" if manager else "Agents")
    user.groups.add(group)
    if manager or admin:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return user


def make_campaign(*, agents=(), codes: bool = True, **fields) -> Campaign:
    fields.setdefault("name", f"Campaign {next(_seq)}")
    fields.setdefault("status", Campaign.Status.RUNNING)
    fields.setdefault("seller_name", "Acme Test Sales")
    fields.setdefault("opt_out_number", "+12025550100")
    fields.setdefault("window_days", [1, 2, 3, 4, 5, 6, 7])
    # Callable all day unless a test is about calling hours: the suite must pass whatever the clock says (with the
    # model's 09:00-20:00 it failed every night, New York time).
    fields.setdefault("window_start", dt.time.min)
    fields.setdefault("window_end", dt.time.max)
    campaign = Campaign.objects.create(**fields)
    if agents:
        campaign.agents.add(*agents)
    if codes:
        DispositionCode.objects.bulk_create([
            DispositionCode(campaign=campaign, code="interested", label="Interested", hotkey="1", is_positive=True),
            DispositionCode(campaign=campaign, code="not-interested", label="Not interested", hotkey="2"),
            DispositionCode(campaign=campaign, code="callback", label="Call back", hotkey="3",
                            closes_contact=False, schedules_callback=True),
            DispositionCode(campaign=campaign, code="dnc", label="Do not call", hotkey="4", adds_to_dnc=True),
        ])
    return campaign


def make_contact(*, campaign: Campaign, phone: str | None = None, **fields) -> Contact:
    phone = phone or f"+1202555{next(_seq) % 10000:04d}"
    fields.setdefault("time_zone", "America/New_York")
    return Contact.objects.create(campaign=campaign, phone=phone, **fields)


def make_session(*, campaign: Campaign, agent=None, state: str = AgentSession.State.READY, in_room: bool = True,
                 **fields) -> AgentSession:
    agent = agent or make_user()
    campaign.agents.add(agent)
    return AgentSession.objects.create(
        agent=agent, campaign=campaign, state=state, in_room=in_room,
        conference_room=AgentSession.new_room_name(), **fields,
    )


def make_call(*, campaign: Campaign, contact: Contact, at, outcome: str, answered_by: str = "",
              dialed_for: AgentSession | None = None, bridged_to: AgentSession | None = None, ring_s: float = 5,
              amd_ms: int | None = None, talk_s: float | None = None, amd_corrected: bool = False,
              code: str | None = None, notes: str = "", agent=None):
    """An ended call placed at `at` with consistent timestamps: rang `ring_s`, answered if it has an AMD verdict
    or a person outcome, talked `talk_s` when connected; a disposition by `agent` when `code` is given."""
    import datetime as dt

    from voice.models import Call, Disposition

    second = dt.timedelta(seconds=1)
    answered = bool(answered_by) or outcome in ("talked", "abandoned", "hung_up_on_hold")
    answered_at = at + second + ring_s * second if answered else None
    amd_at = answered_at + (amd_ms or 0) / 1000 * second if answered_at and amd_ms is not None else None
    connected_at = (amd_at or answered_at) + second if talk_s is not None else None
    ended_at = (connected_at + talk_s * second if connected_at else
                (amd_at or answered_at or at + second + ring_s * second) + 2 * second)
    call = Call.objects.create(
        campaign=campaign, contact=contact, state="ended", outcome=outcome, answered_by=answered_by,
        dialed_for=dialed_for, bridged_to=bridged_to, amd_duration_ms=amd_ms, amd_corrected=amd_corrected,
        sid=f"CA{next(_seq):032d}")
    Call.objects.filter(pk=call.pk).update(
        created_at=at, dialed_at=at, ringing_at=at + second, answered_at=answered_at, amd_at=amd_at,
        bridged_at=connected_at, connected_at=connected_at, ended_at=ended_at, last_event_at=ended_at,
        duration_s=round((ended_at - (answered_at or ended_at)).total_seconds()))
    call.refresh_from_db()
    if code:
        disposition = Disposition.objects.create(call=call, contact=contact, agent=agent or bridged_to.agent,
                                                 code=campaign.disposition_codes.get(code=code), notes=notes)
        Disposition.objects.filter(pk=disposition.pk).update(created_at=ended_at + 30 * second)
    return call
