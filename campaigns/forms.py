"""Admin forms: what a manager types, checked and turned into model values. No writes here."""

from __future__ import annotations

import zoneinfo

from django import forms
from django.conf import settings
from django.db import models

from campaigns.models import Campaign, Contact, DoNotCall
from campaigns.phones import REGIONS, InvalidPhone, normalize_phone

WEEKDAYS = [(1, "Monday"), (2, "Tuesday"), (3, "Wednesday"), (4, "Thursday"), (5, "Friday"), (6, "Saturday"),
            (7, "Sunday")]


def https_formfield(model_field, **kwargs):
    """Form fields as the model makes them, except that a URL typed without a scheme means https (Django 6's
    default; saying so now also silences its deprecation warning)."""
    if isinstance(model_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return model_field.formfield(**kwargs)


def _phone_field_clean(value: str) -> str:
    try:
        return normalize_phone(value, region=settings.DEFAULT_PHONE_REGION)
    except InvalidPhone as exc:
        raise forms.ValidationError(f"{exc}. Write it like +12025550123.") from None


class CampaignAdminForm(forms.ModelForm):
    window_days = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS, coerce=int, widget=forms.CheckboxSelectMultiple, label="Calling days",
        help_text="Days of the week calls may be made, in the contact's local time.",
    )
    # Managers think of the cap in percent; the model stores a share (0.03).
    max_abandon_rate = forms.DecimalField(
        label="Abandonment cap (%)", min_value=0, max_value=100, decimal_places=2,
        help_text="Abandoned calls / calls answered by a person, over 30 days. The US rule is 3 %.",
    )

    class Meta:
        model = Campaign
        formfield_callback = https_formfield
        # Everything a manager sets; `status` changes only through campaign_set_status (buttons, actions).
        fields = (
            "name", "caller_id", "dial_mode", "lines_per_agent", "ring_timeout_s", "min_ring_s", "auto_ready",
            "amd_mode", "amd_unknown_policy", "voicemail_drop", "voicemail_audio_url", "voicemail_text",
            "hold_audio_url", "amd_timeout_s", "amd_speech_threshold_ms", "amd_speech_end_threshold_ms",
            "amd_silence_timeout_ms", "max_hold_s", "max_abandon_rate", "abandon_cap_opt_out", "seller_name",
            "opt_out_number", "safe_harbor_text", "safe_harbor_audio_url", "window_start", "window_end", "window_days",
            "max_attempts", "retry_no_answer_min", "retry_busy_min",
            "retry_machine_min", "retry_abandoned_min", "retry_failed_min", "callbacks_to_same_agent", "agents",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Every campaign names who is calling and how to opt out (the safe-harbor message says both).
        for name in ("seller_name", "opt_out_number"):
            if name in self.fields:
                self.fields[name].required = True
        if self.instance.pk:
            self.initial["max_abandon_rate"] = round(self.instance.max_abandon_rate * 100, 2)
            self.initial["window_days"] = list(self.instance.window_days or [])
        else:
            self.initial.setdefault("max_abandon_rate", 3)
            self.initial.setdefault("window_days", [1, 2, 3, 4, 5])

    def clean_max_abandon_rate(self) -> float:
        return float(self.cleaned_data["max_abandon_rate"]) / 100

    def clean_window_days(self) -> list[int]:
        return sorted(set(self.cleaned_data["window_days"]))

    def clean_caller_id(self) -> str:
        value = self.cleaned_data.get("caller_id", "").strip()
        return _phone_field_clean(value) if value else ""

    def clean(self):
        data = super().clean()
        start, end = data.get("window_start"), data.get("window_end")
        if start and end and start >= end:
            self.add_error("window_end", "The calling window must end after it starts.")
        ring, min_ring = data.get("ring_timeout_s"), data.get("min_ring_s")
        if ring is not None and min_ring is not None and min_ring > ring:
            self.add_error("min_ring_s", "The minimum ring time cannot be longer than the ring timeout.")
        if data.get("voicemail_drop") and not (data.get("voicemail_audio_url") or data.get("voicemail_text")):
            self.add_error("voicemail_text", "To leave voicemails, give a recording URL or a text to read.")
        return data


class ContactAdminForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = ("campaign", "phone", "name", "company", "email", "time_zone", "priority", "custom_fields",
                  "status", "next_attempt_at", "callback_agent")

    def clean_phone(self) -> str:
        return _phone_field_clean(self.cleaned_data["phone"])

    def clean_time_zone(self) -> str:
        value = self.cleaned_data.get("time_zone", "").strip()
        if value and value not in zoneinfo.available_timezones():
            raise forms.ValidationError("Use an IANA time zone name such as America/New_York.")
        return value


class DoNotCallAdminForm(forms.ModelForm):
    class Meta:
        model = DoNotCall
        fields = ("phone", "campaign", "reason")
        help_texts = {"campaign": "Leave empty to block the number in every campaign."}

    def clean_phone(self) -> str:
        return _phone_field_clean(self.cleaned_data["phone"])


def _region_choices() -> list[tuple[str, str]]:
    import phonenumbers

    return [(code, f"{code} (+{phonenumbers.country_code_for_region(code)})") for code in sorted(REGIONS)]


class ContactImportForm(forms.Form):
    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.exclude(status=Campaign.Status.ENDED).order_by("name"),
        help_text="Ended campaigns are not listed: their contacts would never be called.",
    )
    file = forms.FileField(
        label="CSV file",
        help_text="One contact per row, a header row first. A phone column is required (Phone, Number, Mobile "
        "or Telephone); Name (or First name and Last name), Company, Email, Time zone and Priority are "
        "recognised; any other column is kept with the contact.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv,text/plain"}),
    )
    default_region = forms.ChoiceField(
        label="Country of numbers without +", choices=_region_choices,
        help_text="Numbers written without a country code (202 555 0123) are read as numbers of this country.",
    )
    skip_invalid = forms.BooleanField(
        label="Skip bad rows and import the rest", required=False,
        help_text="Unticked, one bad row stops the whole import and nothing is saved. Duplicates and do-not-call "
        "numbers are always skipped.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["default_region"].initial = settings.DEFAULT_PHONE_REGION
