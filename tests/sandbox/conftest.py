"""Fixtures for the sandbox tests: one embedded sandbox and one fake app per session, reset for every test.

These tests need no database and import nothing from the Django app: the sandbox is an outsider.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twilio.rest import Client

from tests.sandbox.fake_app import FakeApp, SandboxHttpClient
from voice.sandbox import Sandbox, SandboxConfig

TIME_SCALE = 50.0  # 1 real second = 50 simulated seconds
API_KEY_SID = "SK" + "1" * 32
API_KEY_SECRET = "sandbox-api-key-secret"
FROM = "+12025550199"


@pytest.fixture(scope="session")
def _sandbox_server() -> Iterator[Sandbox]:
    config = SandboxConfig(time_scale=TIME_SCALE, seed=7, api_key_sid=API_KEY_SID, api_key_secret=API_KEY_SECRET)
    with Sandbox(config) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def _fake_app_server(_sandbox_server: Sandbox) -> Iterator[FakeApp]:
    app = FakeApp(_sandbox_server.auth_token).start()
    yield app
    app.stop()


@pytest.fixture
def sandbox(_sandbox_server: Sandbox, _fake_app_server: FakeApp) -> Sandbox:
    _sandbox_server.reset()
    _fake_app_server.clear()
    return _sandbox_server


@pytest.fixture
def app(sandbox: Sandbox, _fake_app_server: FakeApp) -> FakeApp:
    return _fake_app_server


@pytest.fixture
def client(sandbox: Sandbox) -> Client:
    return Client(sandbox.account_sid, sandbox.auth_token, http_client=SandboxHttpClient(sandbox.base_url))
