"""The authorization matrix: every page, JSON endpoint, socket and admin action, for each of five people:
anonymous, an agent of this campaign, an agent of another campaign, a manager, an administrator.

A cell says what that person gets: OK (authorised: the action ran, or was refused for what it asked, 400/409 -
never for who asked), LOGIN (sent to the sign-in page), 401, 403, or HIDDEN (404: the row is not theirs to see).
What an agent may see is checked too: only their own calls, never a colleague's customers.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group
from django.test import Client

from campaigns.models import AgentSession, Campaign
from realtime.consumers import CLOSE_NOT_ALLOWED, CLOSE_NOT_SIGNED_IN
from realtime.routing import websocket_urlpatterns
from tests import factories
from tests.twilio_fake import FakeTwilio
from voice.models import Call, WebhookEvent

OK, LOGIN, HIDDEN = "ok", "login", "hidden"
ROLES = ("anonymous", "agent", "outsider", "manager", "admin")


def _row(anonymous, agent, outsider, manager, admin):
    return dict(zip(ROLES, (anonymous, agent, outsider, manager, admin), strict=True))


ALL_SIGNED_IN = _row(LOGIN, OK, OK, OK, OK)
MEMBERS_PAGE = _row(LOGIN, OK, 403, OK, OK)
MANAGERS_PAGE = _row(LOGIN, 403, 403, OK, OK)
MEMBERS_JSON = _row(401, OK, 403, OK, OK)
MANAGERS_JSON = _row(401, 403, 403, OK, OK)
ADMIN_SITE = _row(LOGIN, LOGIN, LOGIN, OK, OK)
ADMINISTRATORS_ONLY = _row(LOGIN, LOGIN, LOGIN, 403, OK)

# (method, path, JSON body or form, expected). {c} this campaign, {call} the agent's own live call, {colleague}
# a colleague's live call in the same campaign, {agent_id} / {manager_id} / {peer_id} accounts.
HTTP_MATRIX = [
    ("GET", "/campaigns/", None, ALL_SIGNED_IN),
    ("GET", "/campaigns/{c}/", None, MEMBERS_PAGE),
    ("GET", "/campaigns/{c}/stats", None, MEMBERS_JSON),
    ("GET", "/campaigns/{c}/calls/{call}/card", None, MEMBERS_JSON),
    ("GET", "/campaigns/{c}/calls/{colleague}/card", None, _row(401, 403, 403, OK, OK)),
    ("GET", "/campaigns/{c}/wallboard/", None, MANAGERS_PAGE),
    ("GET", "/campaigns/{c}/wallboard/stats", None, MANAGERS_JSON),
    # reports and exports (managers only), recordings (managers and the call's own agent), the favicon
    ("GET", "/campaigns/{c}/reports/", None, MANAGERS_PAGE),
    ("GET", "/campaigns/{c}/reports/compliance/", None, MANAGERS_PAGE),
    ("GET", "/campaigns/{c}/reports/calls.csv", None, MANAGERS_PAGE),
    ("GET", "/campaigns/{c}/reports/compliance.csv", None, MANAGERS_PAGE),
    ("GET", "/recordings/{recording}/", None, MEMBERS_PAGE),
    ("GET", "/favicon.ico", None, _row(OK, OK, OK, OK, OK)),
    ("POST", "/api/campaign/{c}/supervise", {"call_id": 1, "mode": "listen"}, _row(401, 403, 403, OK, OK)),
    ("POST", "/api/campaign/{c}/recording", {"action": "pause"}, MEMBERS_JSON),
    ("POST", "/api/campaign/{c}/gone", {}, MEMBERS_JSON),
    # the JSON API
    ("POST", "/api/campaign", {"name": "New", "seller_name": "Acme", "opt_out_number": "+12025550100",
                               "contacts": ["+12025550177"]}, _row(401, 403, 403, OK, OK)),
    ("GET", "/api/campaign/{c}", None, MEMBERS_JSON),
    ("POST", "/api/campaign/{c}/join", {}, MEMBERS_JSON),
    ("POST", "/api/campaign/{c}/ready", {}, MEMBERS_JSON),
    ("POST", "/api/campaign/{c}/pause", {"reason": "break"}, MEMBERS_JSON),
    ("POST", "/api/campaign/{c}/leave", {}, MEMBERS_JSON),
    ("POST", "/api/campaign/{c}/dial-next", {}, MEMBERS_JSON),
    ("POST", "/api/campaign/{c}/disposition", {"code": "interested"}, MEMBERS_JSON),
    ("POST", "/api/campaign/{c}/hangup", {}, MEMBERS_JSON),
    ("POST", "/api/campaign/{c}/status", {"status": "paused"}, MANAGERS_JSON),
    ("POST", "/api/campaign/{c}/end", {}, MANAGERS_JSON),
    ("POST", "/api/token", {}, _row(401, OK, OK, OK, OK)),
    # the admin: lists, records, actions
    ("GET", "/admin/", None, ADMIN_SITE),
    ("GET", "/admin/campaigns/campaign/", None, ADMIN_SITE),
    ("GET", "/admin/campaigns/campaign/{c}/change/", None, ADMIN_SITE),
    ("GET", "/admin/campaigns/contact/", None, ADMIN_SITE),
    ("GET", "/admin/campaigns/contact/import/", None, ADMIN_SITE),
    ("GET", "/admin/campaigns/donotcall/", None, ADMIN_SITE),
    ("GET", "/admin/campaigns/agentsession/", None, ADMIN_SITE),
    ("GET", "/admin/voice/call/", None, ADMIN_SITE),
    ("GET", "/admin/voice/callevent/", None, ADMIN_SITE),
    ("GET", "/admin/voice/webhookevent/", None, ADMIN_SITE),
    ("GET", "/admin/voice/disposition/", None, ADMIN_SITE),
    ("POST", "/admin/campaigns/campaign/", {"action": "pause_campaigns", "_selected_action": "{c}"}, ADMIN_SITE),
    ("POST", "/admin/campaigns/campaign/", {"action": "start_campaigns", "_selected_action": "{c}"}, ADMIN_SITE),
    ("POST", "/admin/campaigns/campaign/", {"action": "end_campaigns", "_selected_action": "{c}"}, ADMIN_SITE),
    ("POST", "/admin/campaigns/campaign/", {"action": "simulate_pacing", "_selected_action": "{c}"}, ADMIN_SITE),
    ("POST", "/admin/campaigns/campaign/{c}/status/", {"status": "paused"}, ADMIN_SITE),
    ("POST", "/admin/campaigns/agentsession/", {"action": "sign_out", "_selected_action": "{session}"}, ADMIN_SITE),
    ("POST", "/admin/voice/webhookevent/", {"action": "replay", "_selected_action": "{webhook}"}, ADMIN_SITE),
    # accounts: managers handle agents only; administrators everyone, and groups and permissions
    ("GET", "/admin/auth/user/", None, ADMIN_SITE),
    ("GET", "/admin/auth/user/add/", None, ADMIN_SITE),
    ("GET", "/admin/auth/user/{agent_id}/change/", None, ADMIN_SITE),
    ("GET", "/admin/auth/user/{agent_id}/password/", None, ADMIN_SITE),
    ("GET", "/admin/auth/user/{peer_id}/change/", None, _row(LOGIN, LOGIN, LOGIN, HIDDEN, OK)),
    ("GET", "/admin/auth/user/{peer_id}/password/", None, _row(LOGIN, LOGIN, LOGIN, HIDDEN, OK)),
    ("GET", "/admin/auth/group/{managers_group}/change/", None, _row(LOGIN, LOGIN, LOGIN, OK, OK)),
    ("POST", "/admin/auth/group/{managers_group}/change/", {"name": "Managers", "permissions": "{all_perm}"},
     ADMINISTRATORS_ONLY),
    ("GET", "/admin/auth/group/add/", None, ADMINISTRATORS_ONLY),
]


@pytest.fixture(scope="module")
def twilio_fake():
    fake = FakeTwilio().start()
    yield fake
    fake.stop()


@pytest.fixture
def world(db, settings, twilio_fake, monkeypatch):
    settings.TWILIO_API_BASE_URL = twilio_fake.base_url  # dial-next and end reach Twilio's REST API
    # The admin's "simulate pacing" action is checked for who may run it, not for what it computes (seconds).
    monkeypatch.setattr("voice.admin.pacing_preview", lambda **kw: [SimpleNamespace(
        mode="parallel", lines=3, conversations_per_agent_hour=9.0, abandon_rate=0.01, upper_bound=20.0,
        utilisation=0.5)])
    factories.ensure_roles()
    agent = factories.make_user(username="member")
    colleague = factories.make_user(username="colleague")
    outsider = factories.make_user(username="outsider")
    manager = factories.make_user(username="boss", manager=True)
    peer = factories.make_user(username="peer", manager=True)  # another manager
    admin = factories.make_user(username="root", admin=True)
    campaign = factories.make_campaign(agents=[agent, colleague], name="This campaign")
    factories.make_campaign(agents=[outsider], name="Another campaign")
    mine = factories.make_session(campaign=campaign, agent=agent, state=AgentSession.State.PAUSED)
    theirs = factories.make_session(campaign=campaign, agent=colleague)
    # Contacts on a live line are "dialing", as the dial gate leaves them.
    mine_contact = factories.make_contact(campaign=campaign, name="Mine", status="dialing")
    their_contact = factories.make_contact(campaign=campaign, name="Not yours", status="dialing")
    own_call = Call.objects.create(campaign=campaign, contact=mine_contact, sid="CA" + "1" * 32, state="ringing",
                                   dialed_for=mine)
    colleague_call = Call.objects.create(campaign=campaign, contact=their_contact, sid="CA" + "2" * 32,
                                         state="ringing", dialed_for=theirs)
    from voice.models import Recording

    talk = Call.objects.create(campaign=campaign, contact=factories.make_contact(campaign=campaign, status="done"),
                               sid="CA" + "3" * 32, state="ended", outcome="talked", dialed_for=mine, bridged_to=mine)
    recording = Recording.objects.create(call=talk, sid="RE" + "1" * 32, status="completed", duration_s=30)
    webhook = WebhookEvent.objects.create(kind="status", path="/api/voice/status", params={}, signature_valid=True,
                                          status="failed")
    from django.contrib.auth.models import Permission

    return {
        "users": {"anonymous": None, "agent": agent, "outsider": outsider, "manager": manager, "admin": admin},
        "campaign": campaign,
        "fill": {"c": campaign.pk, "call": own_call.pk, "recording": recording.pk, "colleague": colleague_call.pk,
                 "session": theirs.pk,
                 "webhook": webhook.pk, "agent_id": colleague.pk, "peer_id": peer.pk,
                 "managers_group": Group.objects.get(name="Managers").pk,
                 "all_perm": Permission.objects.get(codename="change_permission").pk if Permission.objects.filter(
                     codename="change_permission").exists() else Permission.objects.first().pk},
    }


def _fill(value, fill):
    if isinstance(value, str):
        return value.format(**fill)
    if isinstance(value, dict):
        return {k: _fill(v, fill) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, fill) for v in value]
    return value


def _verdict(response) -> object:
    code = response.status_code
    if code == 302 and "/login/" in response["Location"]:
        return LOGIN
    if code == 404 or (code == 302 and response["Location"] == "/admin/"):  # the admin's "no such record"
        return HIDDEN
    if code in (401, 403):
        return code
    assert code < 500, code
    return OK  # 200/201/204/302 elsewhere, or 400/409: the request was judged on what it asked, not who asked


@pytest.mark.parametrize(("method", "path", "body", "expected"), HTTP_MATRIX,
                         ids=[f"{m} {p}" + (f" {b.get('action', '')}" if isinstance(b, dict) else "")
                              for m, p, b, _ in HTTP_MATRIX])
def test_http_matrix(world, method, path, body, expected):
    """One row of the matrix: the five people in turn, on one database (administrators last, as what they may
    change, such as a group's permissions, would otherwise change the others' answers)."""
    url = _fill(path, world["fill"])
    data = _fill(body, world["fill"])
    got = {}
    for role in ROLES:
        client = Client()
        user = world["users"][role]
        if user is not None:
            client.force_login(user)
        if method == "GET":
            response = client.get(url)
        elif url.startswith("/api/"):
            response = client.post(url, json.dumps(data), content_type="application/json")
        else:
            response = client.post(url, data)
        got[role] = _verdict(response)
    assert got == expected, f"{method} {url}"


@pytest.mark.parametrize("role", ["agent", "manager", "admin"])
def test_an_agent_sees_only_their_own_calls(world, role):
    client = Client()
    client.force_login(world["users"][role])
    live = client.get(f"/api/campaign/{world['campaign'].pk}").json()["campaign"]["live_calls"]
    names = sorted(call["contact"]["name"] for call in live)
    assert names == (["Mine"] if role == "agent" else ["Mine", "Not yours"])


def test_staff_status_alone_grants_no_role(world):
    staff = factories.make_user(username="staffonly", is_staff=True)
    client = Client()
    client.force_login(staff)
    campaign = world["campaign"].pk
    assert client.get(f"/api/campaign/{campaign}").status_code == 403
    assert client.get(f"/campaigns/{campaign}/wallboard/").status_code == 403
    assert client.post("/api/campaign", {"name": "x"}, content_type="application/json").status_code == 403
    assert client.get("/admin/campaigns/campaign/").status_code == 403  # the admin opens, but shows nothing


def test_a_manager_cannot_grant_himself_permissions(world):
    manager = world["users"]["manager"]
    client = Client()
    client.force_login(manager)
    managers = Group.objects.get(name="Managers")
    before = set(managers.permissions.values_list("pk", flat=True))
    client.post(f"/admin/auth/group/{managers.pk}/change/", {"name": "Managers",
                                                             "permissions": [world["fill"]["all_perm"]]})
    client.post(f"/admin/auth/user/{manager.pk}/change/", {"username": manager.username, "is_superuser": "on",
                                                           "groups": [Group.objects.get(name="Administrators").pk]})
    assert set(managers.permissions.values_list("pk", flat=True)) == before
    manager = get_user_model().objects.get(pk=manager.pk)
    assert not manager.is_superuser and not manager.has_perm("campaigns.administer_accounts")


# -- sockets ----------------------------------------------------------------------------------------------------

SOCKET_MATRIX = {
    "/ws/campaigns/{c}/": _row(CLOSE_NOT_SIGNED_IN, OK, CLOSE_NOT_ALLOWED, OK, OK),
    "/ws/campaigns/{c}/wallboard/": _row(CLOSE_NOT_SIGNED_IN, CLOSE_NOT_ALLOWED, CLOSE_NOT_ALLOWED, OK, OK),
}


@pytest.mark.django_db(transaction=True)
def test_socket_matrix(world):
    router = URLRouter(websocket_urlpatterns)

    async def verdict(path, user):
        communicator = WebsocketCommunicator(router, path)
        communicator.scope["user"] = user or AnonymousUser()
        connected, _ = await communicator.connect()
        assert connected
        message = await communicator.receive_output(timeout=10)  # generous: CI machines are shared
        await communicator.disconnect()
        if message["type"] == "websocket.close":
            return message["code"]
        snapshot = json.loads(message["text"])
        return OK, snapshot

    seen = {}
    for template, expected in SOCKET_MATRIX.items():
        path = template.format(**world["fill"])
        for role in ROLES:
            result = async_to_sync(verdict)(path, world["users"][role])
            got = result[0] if isinstance(result, tuple) else result
            seen[(template, role)] = got
            assert got == expected[role], (template, role, got)
            if template == "/ws/campaigns/{c}/" and role == "agent":
                # The agent's snapshot carries their own lines, never a colleague's customer.
                assert "Not yours" not in json.dumps(result[1]) and "Mine" in json.dumps(result[1])
    assert len(seen) == len(SOCKET_MATRIX) * len(ROLES)


def test_the_matrix_covers_every_url():
    """A new URL must be added to the matrix above: every route of the app is listed here or is a webhook (the
    signature check guards those, tests/security/test_fuzz.py and test_hardening.py)."""
    from django.urls import get_resolver

    covered = {path.split("{")[0].rstrip("/") for _, path, _, _ in HTTP_MATRIX}
    app_routes = set()
    for pattern in get_resolver().url_patterns:
        prefix = str(pattern.pattern)
        if prefix.startswith(("admin/", "api/voice/")):
            continue
        for sub in getattr(pattern, "url_patterns", [None]):
            route = "/" + prefix + (str(sub.pattern) if sub is not None else "")
            app_routes.add(route.split("<")[0].rstrip("/"))
    missing = {route for route in app_routes if route and not any(c.startswith(route) for c in covered)}
    assert missing <= {"/accounts/login", "/accounts/logout"}, missing
    assert Campaign  # the campaign pages above use this model's ids
