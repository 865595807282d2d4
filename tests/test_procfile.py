"""The production process types: the Procfile's commands are the README's, and the web command really serves
signed webhooks and WebSockets from several worker processes sharing events through Redis."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from twilio.request_validator import RequestValidator

from tests import factories
from voice.models import Call
from voice.states import State

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if re.match(r"^\w+:", line))


def test_the_procfile_has_web_and_worker_and_the_readme_shows_the_same_commands():
    processes = {name: command.strip() for name, command in procfile().items()}
    assert set(processes) >= {"web", "worker"}
    assert "$PORT" in processes["web"] or "${PORT" in processes["web"]
    readme = (ROOT / "README.md").read_text()
    for command in processes.values():
        assert command in readme


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def web_command(transactional_db, fake_twilio):
    """The Procfile's web line, run as a platform runs it ($PORT set, WEB_CONCURRENCY=2), on the test database."""
    if not _redis_up():
        pytest.skip("Redis is not running (.ci/run starts it)")
    db = settings.DATABASES["default"]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dialer.settings", "PORT": str(port), "WEB_CONCURRENCY": "2",
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
           "DATABASE_POOL_MIN": "1", "DATABASE_POOL_MAX": "4", "REDIS_URL": REDIS_URL, "PUBLIC_BASE_URL": base,
           "TWILIO_API_BASE_URL": fake_twilio.base_url, "LOG_LEVEL": "WARNING",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen(["/bin/sh", "-c", "exec " + procfile()["web"].strip()], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not _listening(port):
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the web command did not listen within 30 s"
            time.sleep(0.1)
        yield server, base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        connection.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _workers(master_pid: int) -> int:
    result = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True, check=False)
    return len(result.stdout.split())


def _post_signed(base: str, path: str, params: dict) -> int:
    signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(base + path, params)
    request = Request(base + path, data=urlencode(params).encode(), headers={  # noqa: S310 - our own server
        "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})
    with urlopen(request, timeout=10) as response:  # noqa: S310
        return response.status


def test_the_web_command_serves_webhooks_and_consoles_from_two_processes(web_command):
    server, base = web_command
    agent = factories.make_user()
    campaign = factories.make_campaign(agents=[agent])
    session = factories.make_session(campaign=campaign, agent=agent)
    calls = [Call.objects.create(campaign=campaign, contact=factories.make_contact(campaign=campaign),
                                 dialed_for=session, state=State.DIALING, sid=f"CA{i:032x}") for i in range(8)]
    client = Client()
    client.force_login(agent)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    deadline = time.monotonic() + 15
    while _workers(server.pid) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _workers(server.pid) == 2

    async def console_sees_every_line_ring() -> set[int]:
        import aiohttp

        host = base.removeprefix("http://")
        seen: set[int] = set()
        async with aiohttp.ClientSession() as http, http.ws_connect(
                f"ws://{host}/ws/campaigns/{campaign.pk}/",
                headers={"Origin": base, "Cookie": f"sessionid={cookie}"}) as ws:
            snapshot = json.loads((await ws.receive(timeout=15)).data)
            assert snapshot["type"] == "snapshot"
            # Fresh connections land on either worker: the events of those served by the other one come via Redis.
            for call in calls:
                status = await asyncio.to_thread(_post_signed, base, f"/api/voice/status?call={call.pk}", {
                    "CallSid": call.sid, "AccountSid": settings.TWILIO_ACCOUNT_SID, "CallStatus": "ringing",
                    "SequenceNumber": "1"})
                assert status == 204
            ids = {call.pk for call in calls}
            end = time.monotonic() + 15
            while not ids <= seen and time.monotonic() < end:
                message = await ws.receive(timeout=end - time.monotonic())
                event = json.loads(message.data)
                if event["type"] == "call" and event["state"] == State.RINGING:
                    seen.add(event["id"])
        return seen

    seen = asyncio.run(console_sees_every_line_ring())
    assert seen >= {call.pk for call in calls}
    assert set(Call.objects.filter(pk__in=[c.pk for c in calls]).values_list("state", flat=True)) == {State.RINGING}
