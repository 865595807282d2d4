"""Pages for people: the landing page, and the campaign list that is everyone's home (agents: the campaigns they
work on; managers: every campaign, with its console, wallboard and reports)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from campaigns import selectors, services


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Everyone lands on their campaigns; managers reach the admin from the header."""
    user = request.user
    if services.user_is_manager(user) and not user.is_staff:
        # In Managers but without staff status: the admin would refuse them, so say what is missing.
        messages.warning(request, "Your account is a manager's but cannot open the administration yet: ask an "
                                  "administrator to give it staff status.")
    return redirect("campaign_list")


@login_required
def campaign_list(request: HttpRequest) -> HttpResponse:
    manager = services.user_is_manager(request.user)
    campaigns = selectors.campaigns_for_home(user=request.user, manager=manager)
    return render(request, "campaigns/campaign_list.html", {"campaigns": campaigns, "is_manager": manager})
