"""Campaigns, their contacts, do-not-call lists, disposition codes and agent sessions. (The dispositions agents
record about calls live in voice.models.)

Rows change only through `campaigns.services` (and `voice.services` for call-driven changes).
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from campaigns.labels import outcome_choices


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        ENDED = "ended", "Ended"

    class DialMode(models.TextChoices):
        PREVIEW = "preview", "Preview (agent clicks dial)"
        PROGRESSIVE = "progressive", "Progressive (one line per ready agent)"
        PARALLEL = "parallel", "Parallel (several lines at once for each ready agent)"
        PREDICTIVE = "predictive", "Predictive (the dialer decides how many lines from answer rates)"

    class AmdMode(models.TextChoices):
        ENABLE = "Enable", "Detect quickly (hang up on machines)"
        DETECT_MESSAGE_END = "DetectMessageEnd", "Wait for the beep (so a voicemail can be left)"

    class UnknownPolicy(models.TextChoices):
        CONNECT = "connect", "Connect to an agent"
        MACHINE = "machine", "Treat as a machine"

    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    dial_mode = models.CharField(
        max_length=16, choices=DialMode.choices, default=DialMode.PARALLEL, verbose_name="how to dial",
        help_text="Preview: the agent starts each call. Progressive: one call per free agent. Parallel: several "
                  "calls per free agent, the first person to answer is connected. Predictive: the dialer paces "
                  "itself on answer rates and keeps abandoned calls under the cap.",
    )
    lines_per_agent = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(10)], verbose_name="lines per ready agent",
        help_text="Parallel dialing: how many numbers are called at once for each agent who is ready.",
    )
    caller_id = models.CharField(
        max_length=16, blank=True, verbose_name="caller ID",
        help_text="The number contacts see, with its country code (+1 202 555 0199). Empty: the account's number.",
    )
    ring_timeout_s = models.PositiveSmallIntegerField(
        default=25, validators=[MinValueValidator(15), MaxValueValidator(600)], verbose_name="ring for (seconds)",
        help_text="How long a line rings before it counts as no answer (at least 15 s).",
    )
    min_ring_s = models.PositiveSmallIntegerField(
        default=15, validators=[MaxValueValidator(60)], verbose_name="minimum ring (seconds)",
        help_text="A ringing line is never hung up sooner, even when an agent is taken. 15 s is the US rule; "
                  "0 only for lists exempt from it (business numbers).",
    )

    amd_mode = models.CharField(
        max_length=20, choices=AmdMode.choices, default=AmdMode.DETECT_MESSAGE_END,
        verbose_name="answering machines",
        help_text="Every answered call is checked for a person or a machine while the callee hears a short hold "
                  "tone. Waiting for the beep takes longer but lets you leave a voicemail.",
    )
    amd_timeout_s = models.PositiveSmallIntegerField(
        default=30, validators=[MinValueValidator(3), MaxValueValidator(60)],
        verbose_name="give up detecting after (seconds)",
        help_text="After this long without a verdict the answer counts as unknown (see below).",
    )
    amd_speech_threshold_ms = models.PositiveIntegerField(
        default=2400, validators=[MinValueValidator(1000), MaxValueValidator(6000)],
        verbose_name="longest greeting from a person (ms)",
        help_text="A greeting that talks on longer than this is taken for a machine.",
    )
    amd_speech_end_threshold_ms = models.PositiveIntegerField(
        default=1200, validators=[MinValueValidator(500), MaxValueValidator(5000)],
        verbose_name="pause that ends a greeting (ms)",
        help_text="Silence after speech this long means the greeting is over.",
    )
    amd_silence_timeout_ms = models.PositiveIntegerField(
        default=5000, validators=[MinValueValidator(2000), MaxValueValidator(10000)],
        verbose_name="silence before deciding (ms)",
        help_text="If nobody speaks for this long after answering, the answer counts as unknown.",
    )
    amd_unknown_policy = models.CharField(
        max_length=10, choices=UnknownPolicy.choices, default=UnknownPolicy.CONNECT,
        verbose_name="when detection cannot tell",
        help_text="What to do when detection cannot tell a person from a machine.",
    )

    voicemail_drop = models.BooleanField(default=False, verbose_name="leave a voicemail",
                                         help_text="Leave a message on answering machines, after the beep.")
    voicemail_audio_url = models.URLField(blank=True, verbose_name="voicemail recording (link)",
                                          help_text="An MP3 or WAV file played after the beep.")
    voicemail_text = models.TextField(blank=True, verbose_name="voicemail message",
                                      help_text="Read aloud after the beep when there is no recording.")
    seller_name = models.CharField(
        max_length=120, blank=True, verbose_name="seller's name",
        help_text="Who is calling, as the safe-harbor message names it (required to start the campaign).",
    )
    opt_out_number = models.CharField(
        max_length=16, blank=True, verbose_name="opt-out number",
        validators=[RegexValidator(r"^\+[1-9][0-9]{6,14}$",
                                   "Write the number in international form, e.g. +12025550199.")],
        help_text="A number the person can call to be taken off the list, in international form (+1...). "
                  "Required to start the campaign.",
    )
    safe_harbor_text = models.TextField(
        blank=True, verbose_name="message to people nobody could take",
        help_text="Played to a person nobody could be connected to in time. Empty: built from the seller's name "
                  "and opt-out number.",
    )
    safe_harbor_audio_url = models.URLField(blank=True, verbose_name="recording of that message (link)",
                                            help_text="Played instead of reading the message aloud.")
    hold_audio_url = models.URLField(blank=True, verbose_name="hold sound (link)",
                                     help_text="Played while detection runs. Empty: the built-in tone.")
    max_hold_s = models.FloatField(
        default=2.0, validators=[MinValueValidator(0.0), MaxValueValidator(30.0)],
        verbose_name="longest wait for an agent (seconds)",
        help_text="A person waiting longer than this for an agent hears the message above and the call counts "
                  "as abandoned (US rule: 2 s).",
    )
    max_abandon_rate = models.FloatField(
        default=0.03, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name="abandoned calls cap",
        help_text="Most abandoned calls allowed, as a share of the calls a person answered over 30 days: "
                  "0.03 is 3 %, the US rule.",
    )

    window_start = models.TimeField(default=dt.time(9, 0), verbose_name="call from",
                                    help_text="Earliest time to call, in the contact's own time zone.")
    window_end = models.TimeField(default=dt.time(20, 0), verbose_name="call until",
                                  help_text="Latest time to call, in the contact's own time zone.")
    window_days = models.JSONField(default=list, blank=True, verbose_name="days to call",
                                   help_text="Days of the week, 1 = Monday … 7 = Sunday, e.g. [1, 2, 3, 4, 5].")

    max_attempts = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)],
                                                    verbose_name="calls per contact",
                                                    help_text="A contact is not called more often than this.")
    retry_no_answer_min = models.PositiveIntegerField(default=240, verbose_name="after no answer, retry in (minutes)")
    retry_busy_min = models.PositiveIntegerField(default=30, verbose_name="after busy, retry in (minutes)")
    retry_machine_min = models.PositiveIntegerField(default=1440,
                                                    verbose_name="after a machine, retry in (minutes)")
    retry_abandoned_min = models.PositiveIntegerField(
        default=60, verbose_name="after an abandoned call, retry in (minutes)",
        help_text="Abandoned contacts are called back first, never sooner than this, and only with an agent kept "
                  "free for them.",
    )
    retry_failed_min = models.PositiveIntegerField(default=1440,
                                                   verbose_name="after a failed call, retry in (minutes)")

    abandon_cap_opt_out = models.BooleanField(
        default=False, verbose_name="business numbers only: no abandonment cap on parallel lines",
        help_text="Parallel mode only: dial every line whatever the abandonment rate (e.g. business numbers "
                  "only, where the 3 % rule does not apply). Recorded with who set it and when.",
    )
    abandon_cap_opt_out_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False,
    )
    abandon_cap_opt_out_at = models.DateTimeField(null=True, blank=True, editable=False)

    class AnnounceRecording(models.TextChoices):
        NEVER = "never", "Never"
        TWO_PARTY = "two_party", "Only to contacts in two-party-consent states"
        ALWAYS = "always", "To every contact"

    record_calls = models.BooleanField(
        default=False, help_text="Record every talk, from the moment the contact joins the agent."
    )
    announce_recording = models.CharField(
        max_length=10, choices=AnnounceRecording.choices, default=AnnounceRecording.TWO_PARTY,
        help_text="Play the announcement below before the contact is put through (recorded campaigns only).",
    )
    recording_announcement = models.CharField(
        max_length=300, blank=True, default="This call is recorded for quality and training purposes.",
        help_text="What the contact hears first when the campaign records and announces.",
    )

    auto_ready = models.BooleanField(default=True, verbose_name="ready again after each call",
                                     help_text="Agents go back to ready as soon as they save a disposition.")
    callbacks_to_same_agent = models.BooleanField(
        default=True, verbose_name="callbacks go to the same agent",
        help_text="A callback an agent scheduled waits for that agent.")

    agents = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="campaigns",
                                    verbose_name="team", help_text="The agents who work this campaign.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        # The roles are these permissions (held through the Managers and Administrators groups), never is_staff.
        permissions = [
            ("manage_campaigns", "Can run campaigns, contacts and agents (the manager role)"),
            ("administer_accounts", "Can edit any account, groups and permissions (the administrator role)"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(ring_timeout_s__gte=15), name="campaign_ring_timeout_at_least_15s"),
            models.CheckConstraint(condition=Q(lines_per_agent__gte=1) & Q(lines_per_agent__lte=10),
                                   name="campaign_lines_per_agent_1_to_10"),
            models.CheckConstraint(condition=Q(max_abandon_rate__gte=0) & Q(max_abandon_rate__lte=1),
                                   name="campaign_abandon_rate_is_a_share"),
            models.CheckConstraint(condition=Q(max_hold_s__gte=0), name="campaign_max_hold_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # Checked by every ModelForm (admin and the JSON API): a required announcement must have words.
        from django.core.exceptions import ValidationError

        announces = self.record_calls and self.announce_recording != self.AnnounceRecording.NEVER
        if announces and not self.recording_announcement.strip():
            raise ValidationError({"recording_announcement": "Recorded calls that announce need the words to say."})

    @property
    def dial_mode_short(self) -> str:
        """"Parallel, 3 lines" or "Predictive": the mode in a list column, where the long label would wrap."""
        if self.dial_mode == self.DialMode.PARALLEL:
            return f"Parallel, {self.lines_per_agent} lines"
        return self.get_dial_mode_display().split(" (")[0]

    @property
    def effective_caller_id(self) -> str:
        return self.caller_id or settings.TWILIO_PHONE_NUMBER

    @property
    def has_seller_identity(self) -> bool:
        return bool(self.seller_name.strip() and self.opt_out_number)

    @property
    def safe_harbor_message(self) -> str:
        """What a person nobody could take hears: the campaign's own text, else one built from its seller."""
        if self.safe_harbor_text.strip():
            return self.safe_harbor_text
        number = " ".join(self.opt_out_number.removeprefix("+1")) if self.opt_out_number else ""
        return (f"Hello, this is a call from {self.seller_name}. We are sorry, nobody is free to take your call "
                f"right now. To be removed from our list, call {number}. Goodbye.")


class Contact(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be dialed"
        DIALING = "dialing", "On a live call"
        DONE = "done", "Done"
        EXHAUSTED = "exhausted", "Out of attempts"
        DNC = "dnc", "Do not call"
        INVALID = "invalid", "Invalid number"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="contacts")
    phone = models.CharField(max_length=16, help_text="With its country code, e.g. +12025550142.")
    name = models.CharField(max_length=200, blank=True)
    company = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True, verbose_name="e-mail")
    time_zone = models.CharField(max_length=64, blank=True,
                                 help_text="Where the contact is, e.g. America/Chicago: calling hours follow it.")
    custom_fields = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_outcome = models.CharField(max_length=20, blank=True, choices=outcome_choices(blank="Not called yet"),
                                    verbose_name="last result")
    last_called_at = models.DateTimeField(null=True, blank=True, verbose_name="last called")
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name="next call not before")
    priority = models.SmallIntegerField(default=0, help_text="Higher is dialed first.")
    # Set when the person heard the safe-harbor message: they are owed a call back with an agent kept free.
    abandoned_at = models.DateTimeField(null=True, blank=True)
    callback_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="callbacks",
        verbose_name="callback reserved for",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "phone"], name="contact_unique_phone_per_campaign"),
            models.CheckConstraint(condition=Q(phone__regex=r"^\+[1-9][0-9]{6,14}$"), name="contact_phone_is_e164"),
        ]
        indexes = [
            # The claim query: pending contacts of one campaign, best first.
            models.Index(fields=["campaign", "-priority", "next_attempt_at", "id"],
                         condition=Q(status="pending"), name="contact_dialable_idx"),
            models.Index(fields=["phone"], name="contact_phone_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.phone}"


class DoNotCall(models.Model):
    """A number never to dial: everywhere (campaign empty) or in one campaign."""

    phone = models.CharField(max_length=16)
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="dnc")
    reason = models.CharField(max_length=200, blank=True)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "do-not-call entry"
        verbose_name_plural = "do-not-call list"
        constraints = [
            models.UniqueConstraint(fields=["phone"], condition=Q(campaign__isnull=True), name="dnc_unique_global"),
            models.UniqueConstraint(fields=["phone", "campaign"], condition=Q(campaign__isnull=False),
                                    name="dnc_unique_per_campaign"),
        ]
        indexes = [models.Index(fields=["phone"], name="dnc_phone_idx")]

    def __str__(self) -> str:
        return f"{self.phone} ({self.campaign or 'all campaigns'})"


class DispositionCode(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="disposition_codes")
    code = models.SlugField(max_length=32)
    label = models.CharField(max_length=64)
    hotkey = models.CharField(max_length=1, blank=True, verbose_name="key",
                              help_text="Keyboard shortcut in the agent console.")
    is_conversation = models.BooleanField(default=True, verbose_name="conversation",
                                          help_text="Counts as a conversation in reports.")
    is_positive = models.BooleanField(default=False, verbose_name="success",
                                      help_text="A success (interest, meeting): the reports' funnel.")
    closes_contact = models.BooleanField(default=True, verbose_name="done with contact",
                                         help_text="The contact is not dialed again.")
    adds_to_dnc = models.BooleanField(default=False, verbose_name="do not call again",
                                      help_text="The number goes on the do-not-call list.")
    schedules_callback = models.BooleanField(default=False, verbose_name="callback",
                                             help_text="Asks the agent for a callback time.")
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["campaign", "order", "id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "code"], name="disposition_code_unique")]

    def __str__(self) -> str:
        return self.label


class AgentSession(models.Model):
    """One agent working one campaign. The row is reused each time the agent joins that campaign."""

    class State(models.TextChoices):
        OFFLINE = "offline", "Offline"
        READY = "ready", "Ready"
        ON_CALL = "on_call", "On a call"
        WRAP_UP = "wrap_up", "Wrap-up"
        PAUSED = "paused", "Paused"

    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_sessions")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="sessions")
    state = models.CharField(max_length=10, choices=State.choices, default=State.OFFLINE)
    pause_reason = models.CharField(max_length=64, blank=True)
    conference_room = models.CharField(max_length=64, unique=True, default="")
    # The agent's own leg (browser softphone) is in the conference room: customers may be bridged.
    in_room = models.BooleanField(default=False)
    agent_call_sid = models.CharField(max_length=34, blank=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    joined_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["agent", "campaign"], name="agent_session_unique"),
            # An agent works one campaign at a time.
            models.UniqueConstraint(fields=["agent"], condition=~Q(state="offline"), name="agent_one_live_session"),
        ]
        indexes = [models.Index(fields=["campaign", "state"], name="agent_session_state_idx")]

    def __str__(self) -> str:
        return f"{self.agent} in {self.campaign} ({self.state})"

    @staticmethod
    def new_room_name() -> str:
        # No PII in room names (Twilio asks for that): a random token.
        return f"room-{uuid.uuid4().hex}"


class AgentStateChange(models.Model):
    """Append-only: an agent session entered `state` at `at`. Reports add up talk, wrap, wait and idle time from
    these spans (the session row only knows its current state)."""

    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="state_changes")
    state = models.CharField(max_length=10, choices=AgentSession.State.choices)
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["session", "at"], name="agent_state_change_idx")]

    def __str__(self) -> str:
        return f"{self.session_id} {self.state} at {self.at}"
