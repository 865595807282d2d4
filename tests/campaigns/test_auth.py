"""Signing in and out, and where each role lands."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from campaigns.models import Campaign
from tests import factories

pytestmark = pytest.mark.django_db


def test_the_login_page_renders(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="username"' in page and 'name="password"' in page
    assert "/static/css/app.css" in page


def test_a_wrong_password_is_refused_with_a_message(client, agent):
    response = client.post("/accounts/login/", {"username": agent.username, "password": "nope"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    for url in ("/", "/campaigns/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={url}"


def test_a_manager_signs_in_and_lands_on_every_campaign_with_its_pages(client, manager):
    mine = factories.make_campaign(agents=[manager], name="On my team", codes=False)
    new = factories.make_campaign(name="Nobody on it yet", status=Campaign.Status.DRAFT, codes=False)
    ended = factories.make_campaign(name="Last quarter", status=Campaign.Status.ENDED, codes=False)
    response = client.post("/accounts/login/", {"username": manager.username, "password": factories.PASSWORD},
                           follow=True)
    assert response.redirect_chain[-1][0] == "/campaigns/"
    page = response.content.decode()
    for campaign in (mine, new, ended):
        assert campaign.name in page
        for href in (f"/campaigns/{campaign.pk}/", f"/campaigns/{campaign.pk}/wallboard/",
                     f"/campaigns/{campaign.pk}/reports/", f"/admin/campaigns/campaign/{campaign.pk}/change/"):
            assert f'href="{href}"' in page
    assert page.index("Last quarter") > max(page.index("On my team"), page.index("Nobody on it yet"))
    assert 'href="/admin/"' in page  # the header's way into the administration


def test_an_agent_signs_in_and_lands_on_their_campaigns(client, agent, campaign):
    response = client.post("/accounts/login/", {"username": agent.username, "password": factories.PASSWORD},
                           follow=True)
    assert response.redirect_chain[-1][0] == "/campaigns/"
    assert campaign.name in response.content.decode()


def test_the_agent_sees_only_their_campaigns_that_have_not_ended(client, agent, campaign):
    paused = factories.make_campaign(agents=[agent], status=Campaign.Status.PAUSED, codes=False)
    ended = factories.make_campaign(agents=[agent], status=Campaign.Status.ENDED, codes=False)
    not_mine = factories.make_campaign(codes=False)
    client.force_login(agent)

    page = client.get("/campaigns/").content.decode()

    assert f'href="/campaigns/{campaign.pk}/"' in page
    assert f'href="/campaigns/{paused.pk}/"' in page
    assert ended.name not in page
    assert not_mine.name not in page


def test_an_agent_without_campaigns_is_told_what_to_do(client):
    client.force_login(factories.make_user())
    assert "not on any active campaign" in client.get("/campaigns/").content.decode()


def test_a_manager_without_staff_status_is_told_why_the_admin_is_closed(client):
    user = factories.make_user()
    factories.ensure_roles()
    user.groups.add(Group.objects.get_or_create(name="Managers")[0])
    client.force_login(user)
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0] == "/campaigns/"
    assert "staff status" in response.content.decode()


def test_sign_out_is_a_post_and_ends_the_session(client, agent):
    client.force_login(agent)
    page = client.get("/campaigns/").content.decode()
    assert 'action="/accounts/logout/"' in page and 'method="post"' in page
    assert client.get("/accounts/logout/").status_code == 405

    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert client.get("/campaigns/").status_code == 302
