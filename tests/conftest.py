import time
import warnings
from urllib.parse import urlencode

import pytest
from django.conf import settings
from twilio.request_validator import RequestValidator

from tests import factories
from tests.twilio_fake import FakeTwilio


@pytest.fixture(scope="session", autouse=True)
def _test_database_left_alone_before_it_is_dropped(django_db_setup, django_db_blocker):
    """Whatever is still connected to the test database when the session ends (a thread or child process a test
    left behind) makes dropping it fail. Give stragglers a few seconds, then name them and cut them off."""
    yield
    import psycopg
    from django.db import connection

    with django_db_blocker.unblock():
        connection.close()  # this process's own connections
        connection.close_pool()
        params = connection.get_connection_params()
        for key in ("cursor_factory", "context", "pool"):
            params.pop(key, None)
        with psycopg.connect(**params, autocommit=True) as own:
            deadline = time.monotonic() + 5
            while True:
                rows = own.execute(
                    "SELECT pid, application_name, state, left(query, 160) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
                if not rows or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            for pid, application, state, query in rows:
                warnings.warn(f"still connected to the test database at the end: pid {pid} {application!r} "
                              f"({state}): {query}", stacklevel=1)
                own.execute("SELECT pg_terminate_backend(%s)", [pid])


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
