"""The manager's admin: campaigns with live counts, contacts and their import, the do-not-call list, agents.

Changes that have consequences beyond one row (starting, pausing or ending a campaign, signing an agent out,
importing contacts) go through services; the admin only edits plain settings rows itself.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, URLField
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

from campaigns import services
from campaigns.forms import CampaignAdminForm, ContactAdminForm, ContactImportForm, DoNotCallAdminForm
from campaigns.imports import ContactImportError, contacts_import_csv
from campaigns.models import AgentSession, Campaign, Contact, DispositionCode, DoNotCall
from campaigns.phones import phone_in_search

# How many problem rows the import page lists; the counts above the table are always complete.
IMPORT_ISSUES_SHOWN = 500


class ReadOnlyMixin:
    """Rows nobody adds, edits or deletes in admin (they change through services); shown to whoever may view."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class PhoneSearchMixin:
    """The search box also finds a phone number typed any usual way (matched as E.164 on phone_search_field)."""

    phone_search_field = "phone"

    def get_search_results(self, request, queryset, search_term):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        phone = phone_in_search(search_term, region=settings.DEFAULT_PHONE_REGION)
        if phone:
            found = found | queryset.filter(**{self.phone_search_field: phone})
        return found, may_have_duplicates


def count_per_campaign(model, condition: Q | None = None) -> Coalesce:
    """Rows of `model` per campaign, as a correlated subquery: several counts over different tables in one
    query, without the row multiplication (and wrong numbers) of joining them all."""
    rows = (model.objects.filter(condition or Q(), campaign=OuterRef("pk")).order_by().values("campaign")
            .annotate(n=Count("pk")).values("n"))
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


def short_time(at) -> str:
    """"29 Nov 18:05" in a list column, where Django's "Nov. 29, 2026, 6:05 p.m." wraps onto three lines."""
    if at is None:
        return "-"
    return format_html('<span class="dialer-nowrap" title="{}">{}</span>', date_format(timezone.localtime(at),
                       "DATETIME_FORMAT"), date_format(timezone.localtime(at), "j M H:i"))


def campaign_reports_url(campaign: Campaign) -> str:
    # The reports pages come from another branch; until they are merged, link by the design's fixed URL.
    try:
        return reverse("campaign-reports", args=[campaign.pk])
    except NoReverseMatch:
        return f"/campaigns/{campaign.pk}/reports/"


def pacing_row(campaign: Campaign, result) -> dict:
    """One simulated way of dialing, in a manager's words, flagged when it breaks the campaign's cap."""
    if result.mode == "parallel":
        label = f"{result.lines} lines per ready agent"
        current = campaign.dial_mode == result.mode and campaign.lines_per_agent == result.lines
    else:
        label = Campaign.DialMode(result.mode).label
        current = campaign.dial_mode == result.mode
    return {"label": label, "current": current, "over_cap": result.abandon_rate > campaign.max_abandon_rate,
            "conversations": f"{result.conversations_per_agent_hour:.1f}", "abandoned": f"{result.abandon_rate:.1%}",
            "busy": f"{result.utilisation:.0%}", "bound": result.upper_bound}


class DispositionCodeInline(admin.TabularInline):
    model = DispositionCode
    extra = 0
    fields = ("order", "label", "code", "hotkey", "is_conversation", "is_positive", "closes_contact", "adds_to_dnc",
              "schedules_callback")
    prepopulated_fields = {"code": ("label",)}
    verbose_name = "disposition"
    verbose_name_plural = "Dispositions agents choose from (a new campaign gets a standard set)"
    classes = ("dialer-dispositions",)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # Sized to what they hold, so the table fits a laptop screen: one key, a short code, a label.
        sizes = {"hotkey": 2, "code": 16, "label": 22}
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name in sizes:
            # A class, not a style attribute: the Content-Security-Policy allows no inline style.
            field.widget.attrs.update(size=sizes[db_field.name], **{"class": "dialer-sized"})
        return field


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignAdminForm
    list_display = ("name", "status_badge", "mode_column", "contacts_column", "agents_column", "pages_column")
    list_display_links = ("name",)
    list_filter = ("status", "dial_mode")
    search_fields = ("name",)
    filter_horizontal = ("agents",)
    readonly_fields = ("status", "created_by", "created_at", "updated_at", "abandon_cap_opt_out_by",
                       "abandon_cap_opt_out_at")
    inlines = (DispositionCodeInline,)
    save_on_top = True
    fieldsets = (
        ("Basics", {
            "fields": ("name", "status", "caller_id", ("created_by", "created_at", "updated_at")),
            "description": "Start, pause and end the campaign with the buttons above or the actions of the list.",
        }),
        ("Dialing & pacing", {"fields": ("dial_mode", "lines_per_agent", "ring_timeout_s", "min_ring_s",
                                         "auto_ready")}),
        ("Answering machines & voicemail", {"fields": ("amd_mode", "amd_unknown_policy", "voicemail_drop",
                                                       "voicemail_audio_url", "voicemail_text", "hold_audio_url")}),
        ("Machine detection tuning", {
            "classes": ("collapse",),
            "fields": ("amd_timeout_s", "amd_speech_threshold_ms", "amd_speech_end_threshold_ms",
                       "amd_silence_timeout_ms"),
            "description": "Twilio's defaults suit most lists. Change one value at a time and watch how many "
                           "people are taken for machines.",
        }),
        ("Compliance", {"fields": ("seller_name", "opt_out_number", "max_hold_s", "max_abandon_rate",
                                   ("abandon_cap_opt_out", "abandon_cap_opt_out_by", "abandon_cap_opt_out_at"),
                                   "safe_harbor_text", "safe_harbor_audio_url", ("window_start", "window_end"),
                                   "window_days")}),
        ("Recording", {"fields": ("record_calls", "announce_recording", "recording_announcement"),
                       "description": "Recordings are kept for RECORDING_RETENTION_DAYS, then purged here and at "
                                      "Twilio."}),
        ("Retries", {"fields": ("max_attempts", "retry_no_answer_min", "retry_busy_min", "retry_machine_min",
                                "retry_abandoned_min", "retry_failed_min", "callbacks_to_same_agent")}),
        ("Team", {"fields": ("agents",)}),
    )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, URLField):
            kwargs.setdefault("assume_scheme", "https")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_queryset(self, request: HttpRequest):
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is None or not match.url_name.endswith("changelist"):
            return queryset
        return queryset.annotate(
            contacts_total=count_per_campaign(Contact),
            contacts_pending=count_per_campaign(Contact, Q(status=Contact.Status.PENDING)),
            agents_ready=count_per_campaign(AgentSession, Q(state=AgentSession.State.READY)),
            agents_in=count_per_campaign(AgentSession, ~Q(state=AgentSession.State.OFFLINE)),
        )

    @admin.display(description="Status", ordering="status")
    def status_badge(self, campaign: Campaign) -> str:
        return format_html('<span class="dialer-badge dialer-badge-{}">{}</span>', campaign.status,
                           campaign.get_status_display())

    @admin.display(description="Dialing", ordering="dial_mode")
    def mode_column(self, campaign: Campaign) -> str:
        # The short name; the long label with its explanation is on the campaign's page.
        return campaign.dial_mode_short

    @admin.display(description="Open")
    def pages_column(self, campaign: Campaign) -> str:
        return format_html(
            '<span class="dialer-pages"><a href="{}">Wallboard</a> <a href="{}">Reports</a> <a href="{}">Console</a>'
            '</span>', reverse("wallboard", args=[campaign.pk]), campaign_reports_url(campaign),
            reverse("console", args=[campaign.pk]))

    @admin.display(description="To dial / all contacts", ordering="contacts_pending")
    def contacts_column(self, campaign: Campaign) -> str:
        url = reverse("admin:campaigns_contact_changelist") + f"?campaign__id__exact={campaign.pk}"
        return format_html('<a href="{}">{} / {}</a>', url, campaign.contacts_pending, campaign.contacts_total)

    @admin.display(description="Agents ready / in", ordering="agents_in")
    def agents_column(self, campaign: Campaign) -> str:
        return f"{campaign.agents_ready} / {campaign.agents_in}"

    # -- saving ---------------------------------------------------------------------------------------------

    def save_model(self, request, obj: Campaign, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        if "abandon_cap_opt_out" in form.changed_data:
            services.campaign_note_opt_out(campaign=obj, by=request.user)
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if not change and not form.instance.disposition_codes.exists():
            services.disposition_codes_create_defaults(campaign=form.instance)


@admin.register(Contact)
class ContactAdmin(PhoneSearchMixin, admin.ModelAdmin):
    form = ContactAdminForm
    list_display = ("phone", "name", "company", "campaign", "status_column", "attempts", "last_outcome",
                    "last_called_column", "next_call_column")
    list_filter = ("campaign", "status", "last_outcome", "time_zone")
    search_fields = ("phone", "name", "company", "email")
    list_select_related = ("campaign",)
    list_per_page = 100
    raw_id_fields = ("callback_agent",)
    readonly_fields = ("attempts", "last_outcome", "last_called_at", "created_at")
    fieldsets = (
        (None, {"fields": ("campaign", "phone", "name", "company", "email", "time_zone", "priority",
                           "custom_fields")}),
        ("Dialing", {"fields": ("status", "next_attempt_at", "callback_agent", "attempts", "last_outcome",
                                "last_called_at", "created_at")}),
    )

    def get_list_display(self, request):
        # Filtered to one campaign (the way in from a campaign's page), a column repeating its name is only width.
        columns = super().get_list_display(request)
        if request.GET.get("campaign__id__exact"):
            return [column for column in columns if column != "campaign"]
        return columns

    @admin.display(description="Status", ordering="status")
    def status_column(self, contact: Contact) -> str:
        return format_html('<span class="dialer-nowrap">{}</span>', contact.get_status_display())

    @admin.display(description="Last called", ordering="last_called_at")
    def last_called_column(self, contact: Contact) -> str:
        return short_time(contact.last_called_at)

    @admin.display(description="Next call", ordering="next_attempt_at")
    def next_call_column(self, contact: Contact) -> str:
        return short_time(contact.next_attempt_at)

    def get_urls(self):
        urls = [path("import/", self.admin_site.admin_view(self.import_view), name="campaigns_contact_import")]
        return urls + super().get_urls()

    def import_view(self, request: HttpRequest):
        """Upload a CSV file into a campaign and show what happened to every row."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        report = None
        if request.method == "POST":
            form = ContactImportForm(request.POST, request.FILES)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    report = contacts_import_csv(campaign=data["campaign"], file=data["file"],
                                                 default_region=data["default_region"],
                                                 skip_invalid=data["skip_invalid"], added_by=request.user)
                except ContactImportError as exc:
                    form.add_error("file", str(exc))
        else:
            form = ContactImportForm(initial={"campaign": request.GET.get("campaign")})
        issues = report.issues if report else []
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import contacts",
            "form": form,
            "report": report,
            "campaign": form.cleaned_data.get("campaign") if report else None,
            "issues": issues[:IMPORT_ISSUES_SHOWN],
            "issues_hidden": max(len(issues) - IMPORT_ISSUES_SHOWN, 0),
        }
        return TemplateResponse(request, "admin/campaigns/contact/import.html", context)


@admin.register(DoNotCall)
class DoNotCallAdmin(PhoneSearchMixin, admin.ModelAdmin):
    form = DoNotCallAdminForm
    list_display = ("phone", "scope", "reason", "added_by", "created_at")
    list_filter = ("campaign",)
    search_fields = ("phone", "reason")
    list_select_related = ("campaign", "added_by")

    @admin.display(description="Applies to", ordering="campaign__name")
    def scope(self, entry: DoNotCall) -> str:
        return entry.campaign.name if entry.campaign else "All campaigns"

    def save_model(self, request, obj: DoNotCall, form, change: bool) -> None:
        if not change:
            obj.added_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(AgentSession)
class AgentSessionAdmin(admin.ModelAdmin):
    """Who is working which campaign, and in what state. Read only; agents can be signed out."""

    list_display = ("agent", "campaign", "state", "pause_reason", "in_room", "state_changed_at", "joined_at",
                    "left_at")
    list_filter = ("state", "campaign")
    search_fields = ("agent__username", "agent__first_name", "agent__last_name", "campaign__name")
    list_select_related = ("agent", "campaign")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False,
                         "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, extra_context)


# -- user accounts ------------------------------------------------------------------------------------------

User = get_user_model()


class DialerUserAdmin(UserAdmin):
    """Administrators edit any account. Managers create and edit agent accounts only: they do not see managers,
    administrators or superusers (so cannot open their password forms), cannot hand out groups, permissions,
    staff or superuser status, and every account they create is an agent."""

    ROLE_FIELDS = ("is_superuser", "is_staff", "groups", "user_permissions")

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if services.user_is_administrator(request.user):
            return queryset
        # An agent holds no permission at all, through a group or directly, and no admin access.
        return (queryset.filter(is_superuser=False, is_staff=False)
                .exclude(groups__permissions__isnull=False).exclude(user_permissions__isnull=False).distinct())

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if services.user_is_administrator(request.user):
            return fieldsets
        return [(name, {**options, "fields": [f for f in options["fields"] if f not in self.ROLE_FIELDS]})
                for name, options in fieldsets]

    def save_related(self, request, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if not change and not services.user_is_administrator(request.user):
            services.user_make_agent(user=form.instance)


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, DialerUserAdmin)
