"""Manager reports: the analytics page, the compliance page and the CSV exports. Views parse the period,
authorise (managers and administrators only) and hand over to the selectors and exports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from campaigns.exceptions import NotAllowed
from campaigns.models import Campaign
from campaigns.services import access_campaign, user_is_manager
from voice.reports import charts, exports, selectors
from voice.reports.period import BadPeriod, Period, period_from_params


def _manager_campaign(request: HttpRequest, campaign_id: int) -> Campaign:
    try:
        campaign = access_campaign(request.user, campaign_id)
    except NotAllowed as exc:
        raise PermissionDenied(str(exc)) from exc
    if not user_is_manager(request.user):
        raise PermissionDenied("only managers see reports")
    return campaign


def report_view(view: Callable) -> Callable:
    """GET, signed in, a manager of the campaign, and a period that parses (else 400 naming the field)."""

    @login_required
    @require_GET
    @wraps(view)
    def wrapper(request: HttpRequest, campaign_id: int) -> HttpResponse:
        campaign = _manager_campaign(request, campaign_id)
        try:
            period = period_from_params(request.GET, default_tz=settings.TIME_ZONE)
        except BadPeriod as exc:
            if view.__name__.endswith("_page"):
                return render(request, "reports/bad_period.html", {"campaign": campaign, "error": exc},
                              status=400)
            return HttpResponseBadRequest(f"{exc.field}: {exc.message}", content_type="text/plain")
        return view(request, campaign, period)

    return wrapper


@report_view
def reports_page(request: HttpRequest, campaign: Campaign, period: Period) -> HttpResponse:
    report = selectors.campaign_report(campaign=campaign, period=period)
    with timezone.override(period.zone):
        return render(request, "reports/reports.html", {
            **report, "charts": charts.report_charts(report), "query": period.as_query(),
            "tz_given": bool(request.GET.get("tz")), "exports": EXPORTS,
        })


@report_view
def compliance_page(request: HttpRequest, campaign: Campaign, period: Period) -> HttpResponse:
    report = selectors.compliance_report(campaign=campaign, period=period)
    # Times on the page read in the period's zone, like the CSV's.
    with timezone.override(period.zone):
        return render(request, "reports/compliance.html", {
            **report, "query": period.as_query(), "tz_given": bool(request.GET.get("tz")),
            "rolling_over_cap": [d for d in report["abandonment"] if d["over_cap"]],
        })



def _csv_response(chunks: Iterator[bytes], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _export(name: str, build: Callable) -> Callable:
    @report_view
    def view(request: HttpRequest, campaign: Campaign, period: Period) -> StreamingHttpResponse:
        filename = f"campaign-{campaign.pk}-{name}-{period.first_day}-to-{period.last_day}.csv"
        return _csv_response(build(campaign=campaign, period=period), filename)

    view.__name__ = f"{name}_csv"
    return view


calls_csv = _export("calls", exports.calls_csv)
dispositions_csv = _export("dispositions", exports.dispositions_csv)
contacts_csv = _export("contacts", exports.contacts_csv)
agents_csv = _export("agents", exports.agents_csv)
compliance_csv = _export("compliance", exports.compliance_csv)

# (URL name, label) for the page's export links.
EXPORTS = (
    ("campaign-reports-calls-csv", "Calls"),
    ("campaign-reports-dispositions-csv", "Dispositions"),
    ("campaign-reports-contacts-csv", "Contacts"),
    ("campaign-reports-agents-csv", "Agents"),
    ("campaign-compliance-csv", "Compliance"),
)
