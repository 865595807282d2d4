"""What the dialer recorded: calls with their event timeline, the raw webhook inbox, call events; and the
call-side parts of the campaign, contact and agent pages (live calls, abandonment, start / pause / end, signing
agents out), added to `campaigns.admin`'s pages here because `campaigns` never imports `voice`.

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
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html

from campaigns import admin as campaigns_admin
from campaigns.admin import PhoneSearchMixin, ReadOnlyMixin
from campaigns.exceptions import IllegalAction
from campaigns.models import AgentSession, Campaign, Contact
from campaigns.states import campaign_actions
from voice import floor
from voice.models import Call, CallEvent, WebhookEvent, human_answered_q
from voice.pacer import pacing_preview
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


@admin.register(Call)
class CallAdmin(PhoneSearchMixin, ReadOnlyAdmin):
    phone_search_field = "contact__phone"
    list_display = ("id", "created_at", "campaign", "contact", "state", "outcome", "answered_by", "agent",
                    "duration_s", "sid")
    list_filter = ("campaign", "state", "outcome", "answered_by")
    search_fields = ("sid", "contact__phone", "contact__name")
    list_select_related = ("campaign", "contact", "bridged_to__agent")
    date_hierarchy = "created_at"
    inlines = (CallEventInline,)
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


# -- the call side of the campaign, contact and agent pages -----------------------------------------------


class CampaignAdmin(campaigns_admin.CampaignAdmin):
    list_display = ("name", "status_badge", "dial_mode", "contacts_column", "calls_live", "agents_column",
                    "abandonment_column", "created_at")
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

    @admin.display(description="Abandoned (30 days)", ordering="abandoned_30d")
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
        """Conversations per agent-hour and abandonment under each mode, for the campaign's team size."""
        for campaign in queryset[:3]:
            agents = max(1, campaign.agents.count())
            results = pacing_preview(campaign=campaign, agents=agents)
            rows = "; ".join(
                f"{r.mode}{f' {r.lines} lines' if r.mode == 'parallel' else ''}: "
                f"{r.conversations_per_agent_hour:.1f} conv/agent-h, {r.abandon_rate:.1%} abandoned"
                for r in results
            )
            self.message_user(request, f"{campaign.name} ({agents} agents, cap {campaign.max_abandon_rate:.0%}, "
                                       f"bound {results[0].upper_bound:.1f}) — {rows}", messages.INFO)

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
        extra_context = {**(extra_context or {}), "status_buttons": buttons,
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
