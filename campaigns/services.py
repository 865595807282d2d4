"""Writes for campaigns, their contacts and disposition codes, and who may act on them.

What touches calls or agent sessions (starting, pausing and ending a campaign, agents going ready, dial-next,
dispositions) lives in `voice.floor`: this app sits below `voice` and never imports it.
Lock order (shared with voice): campaign -> agent session -> call -> contact.
Commands that are illegal now raise `IllegalAction` (the API answers 409); they change nothing.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import BooleanField
from django.forms import modelform_factory
from django.utils import timezone

from campaigns.exceptions import BadInput, NotAllowed
from campaigns.imports import contacts_import_rows
from campaigns.models import Campaign, DispositionCode

log = logging.getLogger(__name__)


# -- permissions ------------------------------------------------------------------------------------


def user_is_manager(user) -> bool:
    """The manager role is a permission (the Managers and Administrators groups hold it, superusers have it);
    is_staff only lets an account into the admin."""
    return user.is_authenticated and user.has_perm("campaigns.manage_campaigns")


def user_is_administrator(user) -> bool:
    """Administrators grant roles and edit any account; managers edit agents only."""
    return user.is_authenticated and user.has_perm("campaigns.administer_accounts")


def user_make_agent(*, user) -> None:
    """Put an account in the Agents group (what a manager's new accounts are)."""
    user.groups.add(Group.objects.get_or_create(name="Agents")[0])


def access_campaign(user, campaign_id: int) -> Campaign:
    """The campaign if the user is a member or a manager; NotAllowed otherwise (also when it does not exist,
    so ids are not probed)."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        raise NotAllowed("no such campaign")
    if user_is_manager(user) or campaign.agents.filter(pk=user.pk).exists():
        return campaign
    raise NotAllowed("you are not a member of this campaign")


# -- creating a campaign from the API ---------------------------------------------------------------------

DEFAULT_CODES = (
    ("interested", "Interested", "1", {"is_positive": True}),
    ("not-interested", "Not interested", "2", {}),
    ("callback", "Call back later", "3", {"closes_contact": False, "schedules_callback": True}),
    ("wrong-number", "Wrong number", "4", {"is_conversation": False}),
    ("do-not-call", "Do not call", "5", {"adds_to_dnc": True}),
)


def disposition_codes_create_defaults(*, campaign: Campaign) -> None:
    DispositionCode.objects.bulk_create([
        DispositionCode(campaign=campaign, code=code, label=label, hotkey=key, order=i, **flags)
        for i, (code, label, key, flags) in enumerate(DEFAULT_CODES)
    ])


def _form_value(name: str, value):
    """A JSON value as a form reads it: form fields parse text (a bare number or boolean makes some of them
    raise), except the boolean ones."""
    if isinstance(value, dict | list):
        raise BadInput("bad value", {name: "text or a number, not a list or an object"})
    if value is None or isinstance(value, str) or isinstance(Campaign._meta.get_field(name), BooleanField):
        return value
    return str(value)


def campaign_create(*, data: dict, by=None) -> tuple[Campaign, dict]:
    """Create a campaign (settings validated like the admin form) with its contacts, all or nothing."""
    missing = {name: "required: who is calling, and a number to opt out (the safe-harbor message says both)"
               for name in SELLER_FIELDS if not str(data.get(name) or "").strip()}
    fields = [f for f in API_CAMPAIGN_FIELDS if f in data or f == "name"]
    form = modelform_factory(Campaign, fields=fields)(data={k: _form_value(k, data[k]) for k in fields if k in data})
    if not form.is_valid() or missing:
        raise BadInput("the campaign settings are not valid",
                       {**{name: " ".join(errors) for name, errors in form.errors.items()}, **missing})
    raw_contacts = data.get("contacts", [])
    if not isinstance(raw_contacts, list):
        raise BadInput("contacts must be a list", {"contacts": "a list of numbers or objects"})
    if len(raw_contacts) > settings.CSV_MAX_ROWS:
        raise BadInput("too many contacts", {"contacts": f"at most {settings.CSV_MAX_ROWS} per request"})
    rows = []
    for i, item in enumerate(raw_contacts):
        if isinstance(item, str):
            rows.append({"phone": item})
        elif isinstance(item, dict):
            rows.append({str(k): "" if v is None else str(v) for k, v in item.items()})
        else:
            raise BadInput("bad contact", {f"contacts[{i}]": "a phone number or an object with a phone"})
    skip = bool(data.get("skip_invalid", False))
    region = str(data.get("default_region") or settings.DEFAULT_PHONE_REGION)
    with transaction.atomic():
        campaign = form.save(commit=False)
        campaign.created_by = by
        if campaign.abandon_cap_opt_out:
            campaign_note_opt_out(campaign=campaign, by=by)
        campaign.status = data.get("status", Campaign.Status.RUNNING)
        if campaign.status not in Campaign.Status.values:
            raise BadInput("unknown status", {"status": f"one of {', '.join(Campaign.Status.values)}"})
        campaign.save()
        if by is not None:
            campaign.agents.add(by)
        disposition_codes_create_defaults(campaign=campaign)
        report = contacts_import_rows(campaign=campaign, rows=rows, default_region=region, skip_invalid=skip)
        report_json = asdict(report)
        if report_json.get("invalid") and not skip:
            transaction.set_rollback(True)
            raise BadInput("some contacts are not valid; nothing was created",
                           {"contacts": report_json["invalid"]})
    return campaign, report_json


API_CAMPAIGN_FIELDS = (
    "name", "dial_mode", "lines_per_agent", "caller_id", "ring_timeout_s", "min_ring_s", "amd_mode",
    "amd_timeout_s", "amd_unknown_policy", "voicemail_drop", "voicemail_audio_url", "voicemail_text",
    "safe_harbor_text", "hold_audio_url", "max_hold_s", "max_abandon_rate", "window_start", "window_end",
    "max_attempts", "retry_no_answer_min", "retry_busy_min", "retry_machine_min", "retry_abandoned_min",
    "auto_ready", "seller_name", "opt_out_number", "abandon_cap_opt_out", "record_calls", "announce_recording",
    "recording_announcement",
)
SELLER_FIELDS = ("seller_name", "opt_out_number")


def campaign_note_opt_out(*, campaign: Campaign, by=None) -> None:
    """Record who lifted (or restored) the abandonment cap's hold on parallel dialing, and when. Caller saves
    the campaign (admin form, API create) in the same transaction."""
    campaign.abandon_cap_opt_out_by = by if campaign.abandon_cap_opt_out else None
    campaign.abandon_cap_opt_out_at = timezone.now() if campaign.abandon_cap_opt_out else None
    if campaign.abandon_cap_opt_out:
        log.warning("campaign %s: abandonment cap lifted for parallel dialing by %s", campaign.pk, by)
