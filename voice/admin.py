"""What the dialer recorded: calls with their event timeline, the raw webhook inbox, call events, the agents'
dispositions; and the call-side parts of the campaign, contact and agent pages (live calls, abandonment, start /
pause / end, signing agents out), added to `campaigns.admin`'s pages here because `campaigns` never imports `voice`.

Calls are read only (they change only through voice.services, under their row lock). Replaying stored
webhooks runs them through the same code as the first time.
"""

from __future__ import annotations

import json
from collections import Counter

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from campaigns import admin as campaigns_admin
from campaigns.admin import PhoneSearchMixin, ReadOnlyMixin
from campaigns.exceptions import IllegalAction
from campaigns.models import AgentSession, Campaign, Contact
from campaigns.states import campaign_actions
from voice import floor
from voice.gateway import GatewayError
from voice.models import (
    Call,
    CallEffect,
    CallEvent,
    Disposition,
    Recording,
    Supervision,
    WebhookEvent,
    human_answered_q,
)
from voice.pacer import pacing_preview
from voice.recordings import recording_delete
from voice.selectors import ABANDON_WINDOW
from voice.states import Outcome, State


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
        ("Recording", {"fields": ("recording_player",)}),
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

    @admin.display(description="Recording")
    def recording_player(self, call: Call) -> str:
        return recording_player(getattr(call, "recording", None))


def recording_player(recording: Recording | None) -> str:
    """A player streaming through our own view (never Twilio's URL), with a link to the recording's page."""
    if recording is None:
        return "Not recorded"
    page = reverse("recording-detail", args=[recording.pk])
    if not recording.playable:
        return format_html('{} · <a href="{}">recording page</a>', recording.get_status_display(), page)
    return format_html(
        '<audio controls preload="none" src="{}"></audio><br>{} s · <a href="{}">recording page</a>',
        reverse("recording-audio", args=[recording.pk]), recording.duration_s or 0, page,
    )


@admin.register(Recording)
class RecordingAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "call", "status", "duration_s", "channels", "sid")
    list_filter = ("status",)
    search_fields = ("sid", "call__sid", "call__contact__phone")
    list_select_related = ("call",)
    date_hierarchy = "created_at"
    actions = ("delete_at_twilio",)
    fields = ("call", "sid", "status", "player", "duration_s", "channels", "error", "created_at", "completed_at",
              "deleted_at")
    readonly_fields = fields

    @admin.display(description="Audio")
    def player(self, recording: Recording) -> str:
        return recording_player(recording)

    def has_delete_at_twilio_permission(self, request) -> bool:
        return request.user.has_perm("voice.change_recording") or request.user.is_superuser

    @admin.action(description="Delete selected recordings (here and at Twilio)", permissions=["delete_at_twilio"])
    def delete_at_twilio(self, request, queryset):
        done, failed = 0, []
        for recording in queryset:
            try:
                recording_delete(recording=recording, by=request.user)
                done += 1
            except (IllegalAction, GatewayError) as exc:
                failed.append(f"{recording.pk}: {exc}")
        self.message_user(request, f"Deleted {done} recording(s).", messages.SUCCESS)
        if failed:
            self.message_user(request, "Not deleted: " + "; ".join(failed), messages.WARNING)


@admin.register(Supervision)
class SupervisionAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "manager", "mode", "call", "joined_at", "ended_at")
    list_filter = ("mode",)
    list_select_related = ("manager", "call")
    date_hierarchy = "started_at"



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


@admin.register(Disposition)
class DispositionAdmin(ReadOnlyAdmin):
    """What agents recorded after their calls. Read only: it is the record of what was said."""

    list_display = ("created_at", "contact", "campaign", "agent", "code", "short_notes", "callback_at")
    list_filter = ("contact__campaign", "code__label", "agent")
    search_fields = ("contact__phone", "contact__name", "notes")
    list_select_related = ("contact__campaign", "agent", "code")
    date_hierarchy = "created_at"

    @admin.display(description="Campaign", ordering="contact__campaign__name")
    def campaign(self, disposition: Disposition) -> Campaign:
        return disposition.contact.campaign

    @admin.display(description="Notes")
    def short_notes(self, disposition: Disposition) -> str:
        notes = disposition.notes
        return notes if len(notes) <= 80 else notes[:79] + "…"


# -- the call side of the campaign, contact and agent pages -----------------------------------------------


class CampaignAdmin(campaigns_admin.CampaignAdmin):
    list_display = ("name", "status_badge", "mode_column", "contacts_column", "calls_live", "agents_column",
                    "abandonment_column", "pages_column")
    actions = ("start_campaigns", "pause_campaigns", "end_campaigns", "simulate_pacing")

    def get_queryset(self, request: HttpRequest):
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is None or not match.url_name.endswith("changelist"):
            return queryset
        recent = Q(created_at__gte=timezone.now() - ABANDON_WINDOW)
        count = campaigns_admin.count_per_campaign
        return queryset.annotate(
            calls_live_count=count(Call, ~Q(state=State.ENDED)),
            abandoned_30d=count(Call, recent & Q(outcome=Outcome.ABANDONED)),
            humans_30d=count(Call, recent & human_answered_q()),
        )

    @admin.display(description="Live calls", ordering="calls_live_count")
    def calls_live(self, campaign: Campaign) -> int:
        return campaign.calls_live_count

    @admin.display(description="Abandoned, 30 days", ordering="abandoned_30d")
    def abandonment_column(self, campaign: Campaign) -> str:
        if not campaign.humans_30d:
            return "-"
        rate = campaign.abandoned_30d / campaign.humans_30d
        css = "dialer-over-cap" if rate > campaign.max_abandon_rate else "dialer-under-cap"
        return format_html('<span class="{}" title="{} abandoned of {} answered by a person; cap {} %">{} %</span>',
                           css, campaign.abandoned_30d, campaign.humans_30d,
                           f"{campaign.max_abandon_rate * 100:.1f}", f"{rate * 100:.1f}")

    # -- status ---------------------------------------------------------------------------------------------

    def _set_status(self, request: HttpRequest, campaigns, status: str, done_verb: str) -> None:
        done, refused = [], []
        for campaign in campaigns:
            try:
                floor.campaign_set_status(campaign=campaign, status=status, by=request.user)
            except IllegalAction as exc:
                refused.append(f"{campaign.name}: {exc}")
            else:
                done.append(campaign.name)
        if done:
            self.message_user(request, f"{done_verb}: {', '.join(done)}.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not changed — " + "; ".join(refused) + ".", messages.WARNING)

    @admin.action(description="Start (or resume) selected campaigns", permissions=["change"])
    def start_campaigns(self, request, queryset):
        self._set_status(request, queryset, Campaign.Status.RUNNING, "Running")

    @admin.action(description="Pause selected campaigns", permissions=["change"])
    def pause_campaigns(self, request, queryset):
        self._set_status(request, queryset, Campaign.Status.PAUSED, "Paused")

    @admin.action(description="End selected campaigns (hangs up their live calls)", permissions=["change"])
    def end_campaigns(self, request, queryset):
        self._set_status(request, queryset, Campaign.Status.ENDED, "Ended")

    @admin.action(description="Simulate pacing on the campaign's own statistics", permissions=["view"])
    def simulate_pacing(self, request, queryset):
        """Conversations per agent-hour and abandonment under each way of dialing, for the campaign's team size,
        as a page of small tables: the rows that break the campaign's cap are flagged, its current setting marked."""
        previews = []
        for campaign in queryset[:3]:
            agents = max(1, campaign.agents.count())
            rows = [campaigns_admin.pacing_row(campaign, result)
                    for result in pacing_preview(campaign=campaign, agents=agents)]
            previews.append({"campaign": campaign, "agents": agents, "rows": rows,
                             "cap": f"{campaign.max_abandon_rate:.1%}", "bound": rows[0]["bound"] if rows else 0.0,
                             "current_over_cap": any(r["current"] and r["over_cap"] for r in rows)})
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": "Pacing simulation", "previews": previews}
        return TemplateResponse(request, "admin/campaigns/campaign/pacing_preview.html", context)

    def get_urls(self):
        urls = [path("<path:object_id>/status/", self.admin_site.admin_view(self.status_view),
                     name="campaigns_campaign_status")]
        return urls + super().get_urls()

    def status_view(self, request: HttpRequest, object_id: str):
        """The Start / Pause / End buttons of the change page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        campaign = self.get_object(request, object_id)
        if campaign is None or not self.has_change_permission(request, campaign):
            raise PermissionDenied
        status = request.POST.get("status", "")
        labels = {Campaign.Status.RUNNING: "Running", Campaign.Status.PAUSED: "Paused", Campaign.Status.ENDED: "Ended"}
        if status not in labels:
            return HttpResponseBadRequest("unknown status")
        self._set_status(request, [campaign], status, labels[status])
        return redirect("admin:campaigns_campaign_change", campaign.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        campaign = self.get_object(request, object_id)
        buttons = []
        if campaign is not None and self.has_change_permission(request, campaign):
            buttons = [(a["status"], a["label"]) for a in campaign_actions(campaign.status)]
        if campaign is not None and campaign.abandon_cap_opt_out and request.method == "GET":
            who = campaign.abandon_cap_opt_out_by or "someone"
            stamp = campaign.abandon_cap_opt_out_at
            when = timezone.localtime(stamp).strftime("%Y-%m-%d %H:%M") if stamp else "?"
            self.message_user(request, f"The abandonment cap does not hold back parallel dialing on this campaign "
                                       f"(opted out by {who} on {when}).", messages.WARNING)
        pages = []
        if campaign is not None:
            pages = [("Wallboard", reverse("wallboard", args=[campaign.pk])),
                     ("Reports", campaigns_admin.campaign_reports_url(campaign)),
                     ("Console", reverse("console", args=[campaign.pk]))]
        extra_context = {**(extra_context or {}), "status_buttons": buttons, "campaign_pages": pages,
                         "can_import_contacts": request.user.has_perm("campaigns.add_contact")}
        return super().change_view(request, object_id, form_url, extra_context)


class CallInline(ReadOnlyMixin, admin.TabularInline):
    """A contact's calls, newest first (read only: calls change through the dialer)."""

    model = Call
    fk_name = "contact"
    fields = ("created_at", "state", "outcome", "answered_by", "duration_s", "sid")
    readonly_fields = fields
    ordering = ("-created_at",)
    extra = 0
    can_delete = False
    show_change_link = True


class ContactAdmin(campaigns_admin.ContactAdmin):
    inlines = (CallInline,)


class AgentSessionAdmin(campaigns_admin.AgentSessionAdmin):
    actions = ("sign_out",)

    @admin.action(description="Sign the selected agents out (their live calls are released)",
                  permissions=["change"])
    def sign_out(self, request, queryset):
        signed_out = 0
        for session in queryset.exclude(state=AgentSession.State.OFFLINE):
            floor.agent_leave(session=session)
            signed_out += 1
        self.message_user(request, f"Signed out {signed_out} agent(s).", messages.SUCCESS)


for model, model_admin in ((Campaign, CampaignAdmin), (Contact, ContactAdmin), (AgentSession, AgentSessionAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)
