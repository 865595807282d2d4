"""Calls, the raw webhook inbox and the append-only call event log."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from voice.states import MACHINE_VERDICTS, Outcome, State, verdict


def machine_q() -> Q:
    """AMD said machine or fax (the campaign's "unknown" policy aside): the pacer's machine share."""
    return Q(answered_by__in=[*MACHINE_VERDICTS, "fax"])


def human_answered_q() -> Q:
    """A live person answered: the denominator of the abandonment rate (abandoned / human-answered). AMD said
    human, or we talked to them, or they heard the safe-harbor message."""
    return Q(answered_by="human") | Q(outcome__in=[Outcome.TALKED, Outcome.ABANDONED])


class Call(models.Model):
    """One outbound customer leg. Changes only through voice.services, under its row lock."""

    sid = models.CharField(max_length=34, null=True, blank=True, unique=True)
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="calls")
    contact = models.ForeignKey("campaigns.Contact", on_delete=models.CASCADE, related_name="calls")
    dialed_for = models.ForeignKey(
        "campaigns.AgentSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="dialed_calls"
    )
    bridged_to = models.ForeignKey(
        "campaigns.AgentSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="bridged_calls"
    )
    state = models.CharField(max_length=12, choices=[(s.value, s.value) for s in State], default=State.CREATED)
    outcome = models.CharField(max_length=20, blank=True, choices=[(o.value, o.value or "-") for o in Outcome])
    answered_by = models.CharField(max_length=24, blank=True)
    amd_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    amd_corrected = models.BooleanField(default=False, help_text="The agent said this 'human' was a machine.")
    # An abandoned person's call back: dialed alone for an agent who takes no other human meanwhile.
    reserved = models.BooleanField(default=False)
    twiml_fetched = models.BooleanField(default=False)
    twilio_status = models.CharField(max_length=16, blank=True)
    last_sequence = models.IntegerField(default=-1)
    version = models.PositiveIntegerField(default=0)
    duration_s = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    dialed_at = models.DateTimeField(null=True, blank=True)
    ringing_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    amd_at = models.DateTimeField(null=True, blank=True)
    hold_deadline_at = models.DateTimeField(null=True, blank=True)
    bridged_at = models.DateTimeField(null=True, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Rule 1 at the database: an agent never holds two customers.
            models.UniqueConstraint(
                fields=["bridged_to"], condition=Q(state__in=["bridging", "connected"]),
                name="call_one_customer_per_agent",
            ),
            # A contact is never on two live calls at once.
            models.UniqueConstraint(fields=["contact"], condition=~Q(state="ended"), name="call_one_live_per_contact"),
        ]
        indexes = [
            models.Index(fields=["campaign", "state"], name="call_campaign_state_idx"),
            models.Index(fields=["dialed_for", "state"], name="call_dialed_for_state_idx"),
            models.Index(fields=["state", "last_event_at"], condition=~Q(state="ended"), name="call_live_idx"),
            models.Index(fields=["campaign", "ended_at"], name="call_campaign_ended_idx"),
        ]

    def __str__(self) -> str:
        return f"call {self.pk} {self.sid or ''} ({self.state})"

    @property
    def is_live(self) -> bool:
        return self.state != State.ENDED

    @property
    def verdict(self) -> str:
        """"human", "machine" or "" (no verdict yet), by the campaign's policy for "unknown": what the pages
        show, so no page decides from raw AMD values itself."""
        return verdict(self.answered_by, self.campaign.amd_unknown_policy)


class WebhookEvent(models.Model):
    """Every accepted Twilio webhook, stored raw before it is processed (rule 7)."""

    class Kind(models.TextChoices):
        STATUS = "status", "Call status"
        AMD = "amd", "AMD verdict"
        VOICE = "voice", "Voice URL"
        CONFERENCE = "conference", "Conference event"
        DIAL = "dial", "Agent leg"
        OTHER = "other", "Other"

    class Processing(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Recorded and ignored"
        DUPLICATE = "duplicate", "Duplicate"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    # The URL name it arrived on (voice/urls.py): what picks its handler, now and on replay.
    route = models.CharField(max_length=40, blank=True)
    path = models.CharField(max_length=200)
    call_sid = models.CharField(max_length=34, blank=True, db_index=True)
    dedupe_key = models.CharField(max_length=120, null=True, blank=True, unique=True)
    params = models.JSONField(default=dict)
    headers = models.JSONField(default=dict)
    signature_valid = models.BooleanField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=10, choices=Processing.choices, default=Processing.PENDING)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["status", "received_at"], name="webhook_status_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.call_sid} {self.status}"


class CallEvent(models.Model):
    """Append-only audit log of everything that happened to a call (and why facts were ignored)."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40)
    from_state = models.CharField(max_length=12, blank=True)
    to_state = models.CharField(max_length=12, blank=True)
    detail = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    webhook = models.ForeignKey(WebhookEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["call", "created_at"], name="callevent_call_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.from_state}->{self.to_state}"


class DialThrottle(models.Model):
    """The account's calls-per-second budget, shared by every dialer worker: a token bucket in one row."""

    key = models.CharField(max_length=32, primary_key=True)
    tokens = models.FloatField(default=0.0)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.key}: {self.tokens:.2f} tokens"
