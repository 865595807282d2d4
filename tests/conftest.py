from urllib.parse import urlencode

import pytest
from django.conf import settings
from twilio.request_validator import RequestValidator

from tests import factories
from tests.twilio_fake import FakeTwilio


@pytest.fixture
def manager(db):
    return factories.make_user(manager=True)


@pytest.fixture
def agent(db):
    return factories.make_user()


@pytest.fixture
def campaign(db, agent):
    return factories.make_campaign(agents=[agent])


@pytest.fixture
def fake_twilio(settings):
    """Twilio's REST API replaced by a local fake, reached through the real twilio client."""
    fake = FakeTwilio().start()
    settings.TWILIO_API_BASE_URL = fake.base_url
    yield fake
    fake.stop()


def sign(path: str, params: dict) -> str:
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(settings.PUBLIC_BASE_URL + path, params)


def post_webhook(client, name: str, params: dict, *, query: dict | None = None, signature: str | None = None,
                 headers: dict | None = None):
    """POST a form-encoded webhook signed exactly as Twilio signs it."""
    path = f"/api/voice/{name}"
    if query:
        path += "?" + urlencode(query)
    sig = sign(path, params) if signature is None else signature
    extra = {"HTTP_X_TWILIO_SIGNATURE": sig} if sig else {}
    for key, value in (headers or {}).items():
        extra["HTTP_" + key.upper().replace("-", "_")] = value
    return client.post(path, data=urlencode(params, doseq=True), content_type="application/x-www-form-urlencoded",
                       **extra)


@pytest.fixture
def webhook():
    """Signed webhooks through the middleware production gives them (WEBHOOK_MIDDLEWARE, dialer/asgi.py), not the
    pages' MIDDLEWARE: a webhook view that came to need a session or a user fails here, not only in production."""
    from django.test import Client
    from django.test.utils import override_settings

    client = Client()
    with override_settings(MIDDLEWARE=settings.WEBHOOK_MIDDLEWARE):
        client.handler.load_middleware()

    def send(name: str, params: dict, **kwargs):
        return post_webhook(client, name, params, **kwargs)

    return send


@pytest.fixture
def live_app(transactional_db):
    """The app on a live daphne server with a fresh Twilio sandbox (fast time scale) wired both ways."""
    from tests.live import start_live_app, stop_live_app

    # Machines wait out our latency (seconds of app time are 20 simulated ones): outcomes are the app's doing.
    app, saved = start_live_app(time_scale=20.0, cps=50.0, seed=7, machine_hangup_after_s=120.0)
    yield app
    stop_live_app(app, saved)
