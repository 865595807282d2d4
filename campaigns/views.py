"""Pages for people: the landing page that sends each role where it works, and the agent's campaign list."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from campaigns import services
from campaigns.models import Campaign


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Managers to the admin, agents to their campaigns."""
    user = request.user
    if user.is_staff:
        return redirect("admin:index")
    if services.user_is_manager(user):
        # In Managers but without staff status: the admin would refuse them, so say what is missing.
        messages.warning(request, "Your account is a manager's but cannot open the administration yet: ask an "
                                  "administrator to give it staff status.")
    return redirect("campaign_list")


@login_required
def campaign_list(request: HttpRequest) -> HttpResponse:
    """The campaigns the signed-in agent works on and that have not ended."""
    campaigns = (Campaign.objects.filter(agents=request.user).exclude(status=Campaign.Status.ENDED)
                 .order_by("name"))
    return render(request, "campaigns/campaign_list.html", {"campaigns": campaigns})
