"""Test data in one place. Plain functions: keyword-only, sensible defaults, saved rows."""

from __future__ import annotations

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
    campaign = Campaign.objects.create(**fields)
    if agents:
        campaign.agents.add(*agents)
    if codes:
        DispositionCode.objects.bulk_create([
            DispositionCode(campaign=campaign, code="interested", label="Interested", hotkey="1"),
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
