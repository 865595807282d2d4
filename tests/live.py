"""The app on a live ASGI server (daphne, in a thread of the test process) with the Twilio sandbox.

Everything crosses real HTTP both ways: the app reaches the sandbox through the real twilio client,
the sandbox calls the app's webhooks with signed requests. Running daphne in-process keeps the
in-memory channel layer shared between the server and the test, so WebSocket events arrive too.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, connections, transaction

from voice import gateway
from voice.sandbox import Sandbox, SandboxConfig


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveApp:
    base_url: str
    sandbox: Sandbox

    def url(self, path: str) -> str:
        return self.base_url + path


_server_lock = threading.Lock()
_server_url: str | None = None


def start_daphne() -> str:
    """Start daphne once per test process (Twisted's reactor cannot be restarted) and return its URL."""
    global _server_url
    with _server_lock:
        if _server_url:
            return _server_url
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        from dialer.asgi import application

        port = _free_port()
        server = Server(application=application,
                        endpoints=build_endpoint_description_strings(host="127.0.0.1", port=port),
                        signal_handlers=False, verbosity=0, http_timeout=60)
        threading.Thread(target=server.run, name="daphne", daemon=True).start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        _server_url = f"http://127.0.0.1:{port}"
        return _server_url


def start_live_app(**sandbox_config) -> tuple[LiveApp, dict]:
    """Point the app at a fresh sandbox and the sandbox at the app. Returns the app and the settings to restore."""
    base_url = start_daphne()
    config = SandboxConfig(account_sid=settings.TWILIO_ACCOUNT_SID, auth_token=settings.TWILIO_AUTH_TOKEN,
                           application_sid=settings.TWILIO_TWIML_APP_SID, allowed_origins=(base_url,),
                           **sandbox_config)
    sandbox = Sandbox(config)
    sandbox.start()
    saved = {name: getattr(settings, name) for name in ("PUBLIC_BASE_URL", "TWILIO_API_BASE_URL", "TWILIO_SANDBOX",
                                                        "TWILIO_SANDBOX_CONTROL_TOKEN")}
    settings.PUBLIC_BASE_URL = base_url
    settings.TWILIO_API_BASE_URL = sandbox.base_url
    settings.TWILIO_SANDBOX_CONTROL_TOKEN = sandbox.control_token
    settings.TWILIO_SANDBOX = True
    gateway._client_for.cache_clear()
    return LiveApp(base_url=base_url, sandbox=sandbox), saved


def stop_live_app(app: LiveApp, saved: dict) -> None:
    app.sandbox.stop()
    for name, value in saved.items():
        setattr(settings, name, value)
    gateway._client_for.cache_clear()
    _wait_for_quiet_database()


def _wait_for_quiet_database(timeout_s: float = 10.0) -> None:
    """Wait until no other session works in the database: daphne outlives the sandbox, and a late (jittered)
    webhook still being processed would deadlock with the test's teardown TRUNCATE."""
    if connection.vendor != "postgresql":
        return
    quiet = 0
    deadline = time.monotonic() + timeout_s
    while quiet < 3 and time.monotonic() < deadline:  # three checks in a row: a request may be just arriving
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state <> 'idle'")
            busy = cursor.fetchone()[0]
        quiet = quiet + 1 if busy == 0 else 0
        time.sleep(0.1)


def wait_until(predicate, *, timeout_s: float = 10.0, interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval_s)
    return predicate()


def hold_agent_rows(session_ids: list[int], release: threading.Event, *, hold_s: float = 10.0) -> threading.Thread:
    """Another process busy with these agents' rows (a heartbeat, a disposition): a thread with its own
    connection holds their row locks until `release` is set (or `hold_s` passes). Returns once they are held."""
    from campaigns.models import AgentSession

    held = threading.Event()

    def run():
        try:
            with transaction.atomic():
                list(AgentSession.objects.select_for_update().filter(pk__in=session_ids))
                held.set()
                release.wait(hold_s)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert held.wait(5), "the rows were not held"
    return thread


def at_once(work, times: int, *, timeout_s: float = 60.0) -> tuple[list, list[Exception]]:
    """Run `work()` on `times` threads released together (a barrier), each with its own database connection, closed
    after. Returns what the calls returned and what they raised."""
    barrier = threading.Barrier(times)
    results, errors = [], []

    def run():
        try:
            barrier.wait(timeout=10)
            results.append(work())
        except Exception as exc:  # the caller asserts on them
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout_s)
    return results, errors


def threads_calling(monkeypatch, module, name: str) -> list[str]:
    """The names of the threads that call `module.name` from now on (the function still runs)."""
    names, real = [], getattr(module, name)

    def watched(*args, **kwargs):
        names.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, watched)
    return names
