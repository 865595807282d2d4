"""What the dialer recorded: calls with their event timeline, the raw webhook inbox, call events.

Everything here is read only (calls change only through voice.services, under their row lock). The one
action is replaying stored webhooks, which runs them through the same code as the first time.
"""

from __future__ import annotations

import json
from collections import Counter

from django.contrib import admin, messages
from django.utils.html import format_html

from campaigns.admin import PhoneSearchMixin, ReadOnlyMixin
from voice.models import Call, CallEffect, CallEvent, WebhookEvent


def pretty_json(value) -> str:
    return format_html('<pre class="dialer-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True,
                                                                        ensure_ascii=False, default=str))


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Viewable by whoever has the view permission; nobody adds, edits or deletes rows here."""


class CallEventInline(ReadOnlyMixin, admin.TabularInline):
    model = CallEvent
    fk_name = "call"
    fields = ("created_at", "kind", "from_state", "to_state", "detail", "data_pretty", "webhook")
    readonly_fields = fields
    ordering = ("created_at", "id")
    extra = 0
    can_delete = False
    verbose_name = "event"
    verbose_name_plural = "Timeline"

    @admin.display(description="Data")
    def data_pretty(self, event: CallEvent) -> str:
        return pretty_json(event.data) if event.data else ""


class CallEffectInline(ReadOnlyMixin, admin.TabularInline):
    model = CallEffect
    fields = ("created_at", "kind", "status", "attempts", "started_at", "finished_at", "result")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "Twilio request"
    verbose_name_plural = "Twilio requests (outbox)"


@admin.register(Call)
class CallAdmin(PhoneSearchMixin, ReadOnlyAdmin):
    phone_search_field = "contact__phone"
    list_display = ("id", "created_at", "campaign", "contact", "state", "outcome", "answered_by", "agent",
                    "duration_s", "sid")
    list_filter = ("campaign", "state", "outcome", "answered_by")
    search_fields = ("sid", "contact__phone", "contact__name")
    list_select_related = ("campaign", "contact", "bridged_to__agent")
    date_hierarchy = "created_at"
    inlines = (CallEventInline, CallEffectInline)
    fieldsets = (
        (None, {"fields": ("sid", "campaign", "contact", "state", "outcome", "error")}),
        ("Answering machine detection", {"fields": ("answered_by", "amd_duration_ms", "amd_corrected")}),
        ("Agent", {"fields": ("dialed_for", "bridged_to")}),
        ("Times", {"fields": ("created_at", "dialed_at", "ringing_at", "answered_at", "amd_at", "hold_deadline_at",
                              "bridged_at", "connected_at", "ended_at", "last_event_at", "duration_s")}),
        ("Twilio", {"classes": ("collapse",),
                    "fields": ("twilio_status", "twiml_fetched", "last_sequence", "version")}),
    )

    @admin.display(description="Agent", ordering="bridged_to__agent__username")
    def agent(self, call: Call):
        return call.bridged_to.agent if call.bridged_to else None



@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "kind", "call_sid", "status", "signature_valid", "attempts", "short_error")
    list_filter = ("kind", "status", "signature_valid")
    search_fields = ("call_sid", "path", "dedupe_key")
    date_hierarchy = "received_at"
    actions = ("replay",)
    fields = ("received_at", "kind", "path", "call_sid", "status", "processed_at", "attempts", "signature_valid",
              "dedupe_key", "params_pretty", "headers_pretty", "error")
    readonly_fields = fields

    @admin.display(description="Error")
    def short_error(self, event: WebhookEvent) -> str:
        last_line = event.error.strip().splitlines()[-1] if event.error.strip() else ""
        return last_line[:100]

    @admin.display(description="Parameters")
    def params_pretty(self, event: WebhookEvent) -> str:
        return pretty_json(event.params)

    @admin.display(description="Headers")
    def headers_pretty(self, event: WebhookEvent) -> str:
        return pretty_json(event.headers)

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("voice.replay_webhookevent")

    @admin.action(description="Replay selected webhooks", permissions=["replay"])
    def replay(self, request, queryset):
        from voice.inbox import webhook_replay

        outcomes = Counter(str(webhook_replay(event=event)) for event in queryset.order_by("received_at", "id"))
        summary = ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items()))
        level = messages.WARNING if outcomes.get(WebhookEvent.Processing.FAILED) else messages.SUCCESS
        self.message_user(request, f"Replayed {sum(outcomes.values())} webhook(s): {summary}.", level)


@admin.register(CallEvent)
class CallEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "call", "kind", "from_state", "to_state", "detail")
    list_filter = ("kind",)
    search_fields = ("call__sid", "detail")
    list_select_related = ("call",)
    date_hierarchy = "created_at"
    fields = ("created_at", "call", "kind", "from_state", "to_state", "detail", "data_pretty", "webhook")
    readonly_fields = fields

    @admin.display(description="Data")
    def data_pretty(self, event: CallEvent) -> str:
        return pretty_json(event.data)


@admin.register(CallEffect)
class CallEffectAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "call", "kind", "status", "attempts", "finished_at", "result")
    list_filter = ("status", "kind")
    search_fields = ("call__sid", "result")
    list_select_related = ("call",)
    raw_id_fields = ("call",)
