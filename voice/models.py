"""Calls, the raw webhook inbox, the append-only call event log, and the dispositions agents record about calls."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from campaigns.labels import CALL_STATE_LABELS, outcome_choices
from voice.states import MACHINE_VERDICTS, Outcome, State, verdict


def machine_q() -> Q:
    """AMD said machine or fax (the campaign's "unknown" policy aside): the pacer's machine share."""
    # Sorted: the reports compile this into SQL text, which should read the same in every process.
    return Q(answered_by__in=[*sorted(MACHINE_VERDICTS), "fax"])


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
    state = models.CharField(max_length=12, choices=[(s.value, CALL_STATE_LABELS[s.value]) for s in State],
                             default=State.CREATED, verbose_name="stage")
    outcome = models.CharField(max_length=20, blank=True, choices=outcome_choices(blank="Not ended yet"),
                               verbose_name="result")
    answered_by = models.CharField(max_length=24, blank=True, verbose_name="detection said",
                                   help_text="Twilio's verdict: human, machine_start, machine_end_beep, fax, unknown…")
    amd_duration_ms = models.PositiveIntegerField(null=True, blank=True, verbose_name="detection took (ms)")
    amd_corrected = models.BooleanField(
        default=False, verbose_name="machine spotted by the agent",
        help_text="Detection took this answer for a person; the agent found a machine and said so.")
    # An abandoned person's call back: dialed alone for an agent who takes no other human meanwhile.
    reserved = models.BooleanField(default=False, db_default=False)  # raw inserts (seeding) leave it out
    twiml_fetched = models.BooleanField(default=False)
    twilio_status = models.CharField(max_length=16, blank=True)
    last_sequence = models.IntegerField(default=-1)
    version = models.PositiveIntegerField(default=0)
    duration_s = models.PositiveIntegerField(null=True, blank=True, verbose_name="duration (seconds)")
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
            # Reports and exports read a campaign's calls by the time they were placed (exports page on id too).
            models.Index(fields=["campaign", "created_at", "id"], name="call_campaign_created_idx"),
            # The report rollups find the calls that changed since they were last brought up to date.
            models.Index(fields=["campaign", "last_event_at"], name="call_campaign_event_idx"),
            # The compliance report lists every abandoned call of a period.
            models.Index(fields=["campaign", "created_at"], condition=Q(outcome="abandoned"),
                         name="call_abandoned_idx"),
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
        RECORDING = "recording", "Recording status"
        OTHER = "other", "Other"

    class Processing(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Recorded and ignored"
        DUPLICATE = "duplicate", "Duplicate"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    # The URL name it arrived on (voice/urls.py): what picks its handler, now and on replay.
    route = models.CharField(max_length=40, blank=True, db_default="")
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


class Disposition(models.Model):
    """What the agent recorded about one call. One per call: disposing twice is refused. Written by
    voice.floor; the campaign's list of codes (DispositionCode) stays in campaigns.

    The table keeps the name it had when the model lived in campaigns (a move of the model, not of the data)."""

    call = models.OneToOneField(Call, on_delete=models.CASCADE, related_name="disposition")
    contact = models.ForeignKey("campaigns.Contact", on_delete=models.CASCADE, related_name="dispositions")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="dispositions")
    code = models.ForeignKey("campaigns.DispositionCode", on_delete=models.PROTECT, related_name="+")
    notes = models.TextField(blank=True)
    callback_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "campaigns_disposition"
        ordering = ["-created_at"]
        # The report rollups find the dispositions written since they were last brought up to date.
        indexes = [models.Index(fields=["created_at"], name="disposition_created_idx")]

    def __str__(self) -> str:
        return f"{self.code} by {self.agent}"


class DialThrottle(models.Model):
    """The account's calls-per-second budget, shared by every dialer worker: a token bucket in one row."""

    key = models.CharField(max_length=32, primary_key=True)
    tokens = models.FloatField(default=0.0)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.key}: {self.tokens:.2f} tokens"


class Recording(models.Model):
    """The recording of one talk, kept at Twilio; we keep its facts. Changes only through voice.recordings.

    `media_url` is Twilio's and needs the account's credentials: it never reaches a browser, playback is
    streamed through our own view.
    """

    class Status(models.TextChoices):
        STARTING = "starting", "Starting"  # row written, Twilio not yet asked (or not yet answered)
        IN_PROGRESS = "in-progress", "Recording"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        ABSENT = "absent", "Nothing recorded"
        FAILED = "failed", "Failed"
        DELETED = "deleted", "Deleted"

    call = models.OneToOneField(Call, on_delete=models.CASCADE, related_name="recording")
    sid = models.CharField(max_length=34, null=True, blank=True, unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.STARTING)
    channels = models.PositiveSmallIntegerField(default=2)
    duration_s = models.PositiveIntegerField(null=True, blank=True)
    media_url = models.URLField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"], name="recording_status_idx")]

    def __str__(self) -> str:
        return f"recording {self.sid or self.pk} ({self.status})"

    @property
    def playable(self) -> bool:
        return self.status == self.Status.COMPLETED and bool(self.media_url)


class Supervision(models.Model):
    """A manager listening to, whispering to or barging into one live talk. Changes only through
    voice.supervision."""

    class Mode(models.TextChoices):
        LISTEN = "listen", "Listening"
        WHISPER = "whisper", "Whispering"
        BARGE = "barge", "Barged in"

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="supervisions")
    manager = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="supervisions")
    mode = models.CharField(max_length=8, choices=Mode.choices)
    leg_sid = models.CharField(max_length=34, blank=True, help_text="The manager's softphone leg in the room.")
    conference_sid = models.CharField(max_length=34, blank=True)
    joined_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # A manager supervises one talk at a time.
            models.UniqueConstraint(fields=["manager"], condition=Q(ended_at__isnull=True),
                                    name="supervision_one_live_per_manager"),
        ]

    def __str__(self) -> str:
        return f"{self.manager} {self.mode} call {self.call_id}"


class CallEffect(models.Model):
    """The transactional outbox (rule 11): one Twilio side effect a transition decided, written in the same
    transaction as the state change and executed after commit by whichever process is alive (voice.outbox).
    The row keeps the outcome, so an effect is never lost in a crash and never silently forgotten."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"  # a create or recording start being sent; taken over if its sender died
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped (the call moved on)"
        FAILED = "failed", "Failed"
        AMBIGUOUS = "ambiguous", "Ambiguous (no answer from Twilio; the reconciler looks the call up)"

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="effects")
    # "create", a voice.states.Effect value that talks to Twilio, or one of voice.outbox.SENT_ELSEWHERE
    kind = models.CharField(max_length=24)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    not_before = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["status", "not_before"], condition=Q(status__in=["pending", "sending"]),
                         name="calleffect_open_idx"),
            models.Index(fields=["call", "kind"], name="calleffect_call_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for call {self.call_id} ({self.status})"


class ConsoleSocket(models.Model):
    """One open agent console WebSocket (voice.presence). An agent receives customers only while one of their
    console sockets for the campaign has pinged within PRESENCE_TIMEOUT_S; a process that dies leaves rows
    that simply go stale."""

    channel_name = models.CharField(max_length=200, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+")
    opened_at = models.DateTimeField(auto_now_add=True)
    seen_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "campaign", "seen_at"], name="consolesocket_user_idx")]

    def __str__(self) -> str:
        return f"console of user {self.user_id} on campaign {self.campaign_id}"
