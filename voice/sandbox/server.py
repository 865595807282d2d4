"""`Sandbox`: the HTTP server plus engine, embeddable in a test (own thread and loop) or run in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, TypeVar

from aiohttp import web

from voice.pacing.population import Behaviour
from voice.sandbox import control, rest
from voice.sandbox.config import SandboxConfig
from voice.sandbox.engine import Engine

log = logging.getLogger("voice.sandbox")
T = TypeVar("T")


def build_app(engine: Engine) -> web.Application:
    app = web.Application(middlewares=[rest.twilio_api_middleware, control.control_guard_middleware])
    app[rest.ENGINE] = engine
    rest.add_routes(app)
    control.add_routes(app)
    return app


class Sandbox:
    """A local Twilio: REST API + signed webhooks + simulated callees.

    Embedded: `with Sandbox(SandboxConfig(time_scale=50)) as sb: ...` (or `start()` / `stop()`); the server runs
    in a background thread with its own event loop, and the methods below are safe to call from any other
    thread. Foreground: `serve_forever()` blocks until Ctrl-C / SIGTERM.
    """

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        self._initial = replace(config or SandboxConfig(), **overrides)
        self._engine: Engine | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # -- addresses and identity ------------------------------------------------------------------------

    @property
    def config(self) -> SandboxConfig:
        return self._engine.config if self._engine is not None else self._initial

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("sandbox is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """What the app's TWILIO_API_BASE_URL should be, e.g. http://127.0.0.1:8100."""
        host = self._initial.host
        if host in ("0.0.0.0", "", "::"):  # noqa: S104 - we only read it, to pick a connectable address
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def account_sid(self) -> str:
        return self._initial.account_sid

    @property
    def auth_token(self) -> str:
        return self._initial.auth_token

    @property
    def control_token(self) -> str:
        return self._initial.control_token

    @property
    def control_headers(self) -> dict[str, str]:
        """What a client of the control API (/sandbox/...) sends: the per-run token."""
        return {"X-Sandbox-Token": self._initial.control_token}

    @property
    def seed(self) -> int:
        if self._engine is None:
            raise RuntimeError("sandbox is not running")
        return self._engine.seed

    # -- running ---------------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Sandbox:
        """Serve in a background thread; returns once the socket is listening."""
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:  # report any start-up failure to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._close())
                loop.close()

        self._thread = threading.Thread(target=run, name="twilio-sandbox", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("sandbox did not start in time")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, cancel every call (no more webhooks), and join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None
        self._loop = None

    def serve_forever(self, on_ready: Callable[[Sandbox], None] | None = None) -> None:
        """Serve in the calling thread until Ctrl-C or SIGTERM, then shut down cleanly."""

        async def main() -> None:
            await self._open()
            task = asyncio.current_task()
            assert task is not None
            with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers off the main thread
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
            if on_ready is not None:
                on_ready(self)
            try:
                await asyncio.Event().wait()
            finally:
                await self._close()

        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            asyncio.run(main())

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _open(self) -> None:
        engine = Engine(self._initial)
        await engine.start()
        runner = web.AppRunner(build_app(engine), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._initial.host, self._initial.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            await engine.close()
            raise
        self._engine, self._runner = engine, runner
        self._port = runner.addresses[0][1]
        log.info(
            "Twilio sandbox listening on %s (seed %s, time scale %g)",
            self.base_url,
            engine.seed,
            engine.config.time_scale,
        )

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()  # first: no new REST requests start new calls
        if self._engine is not None:
            await self._engine.close()
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        self._runner = None
        self._port = None

    # -- controls (thread-safe) --------------------------------------------------------------------------

    def _on_loop(self, fn: Callable[[Engine], T]) -> T:
        engine, loop = self._engine, self._loop
        if engine is None or loop is None:
            raise RuntimeError("sandbox is not running (embedded controls need start())")
        if threading.current_thread() is self._thread:
            return fn(engine)

        async def call() -> T:
            return fn(engine)

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=10)

    def reset(self) -> None:
        """Forget all calls, rooms, overrides and counters (no callbacks sent); restore the start-up config."""
        self._on_loop(lambda engine: engine.reset())

    def update_config(self, **changes: Any) -> SandboxConfig:
        """Change runtime knobs (cps, time_scale, misbehaviour rates, ...). See config.RUNTIME_FIELDS."""
        return self._on_loop(lambda engine: engine.update_config(changes))

    def set_behaviour(self, number: str, behaviour: Behaviour | dict[str, Any]) -> Behaviour:
        """Pin what the next calls to `number` do; a dict may be partial (missing timings are drawn)."""
        return self._on_loop(lambda engine: engine.book.set_override(number, behaviour, engine.config.population))

    def clear_behaviours(self) -> None:
        self._on_loop(lambda engine: engine.book.overrides.clear())

    def calls(self, **filters: str) -> list[dict[str, Any]]:
        """Snapshots of calls (as GET /sandbox/calls), optionally filtered by equal fields, e.g. to=..."""

        def snapshot(engine: Engine) -> list[dict[str, Any]]:
            views = [control.call_view(c, engine.clock) for c in engine.calls.values()]
            return [v for v in views if all(v.get(k) == value for k, value in filters.items())]

        return self._on_loop(snapshot)

    def call(self, sid: str) -> dict[str, Any]:
        def snapshot(engine: Engine) -> dict[str, Any]:
            if sid not in engine.calls:
                raise KeyError(sid)
            return control.call_view(engine.calls[sid], engine.clock)

        return self._on_loop(snapshot)

    def conferences(self) -> list[dict[str, Any]]:
        return self._on_loop(
            lambda engine: [control.conference_view(c, engine.clock) for c in engine.rooms.by_sid.values()]
        )

    def conference(self, sid: str) -> dict[str, Any]:
        return self._on_loop(lambda engine: control.conference_view(engine.rooms.by_sid[sid], engine.clock))

    def recordings(self, **filters: str) -> list[dict[str, Any]]:
        """Snapshots of recordings (as GET /sandbox/recordings), optionally filtered by equal fields."""

        def snapshot(engine: Engine) -> list[dict[str, Any]]:
            views = [control.recording_view(r, engine.clock) for r in engine.recorder.by_sid.values()]
            return [v for v in views if all(v.get(k) == value for k, value in filters.items())]

        return self._on_loop(snapshot)

    def stats(self) -> dict[str, Any]:
        return self._on_loop(control.stats_view)

    def sim_time(self) -> float:
        return self._on_loop(lambda engine: engine.clock.now())

    def place_agent_leg(
        self,
        identity: str,
        voice_url: str,
        *,
        params: dict[str, str] | None = None,
        to: str | None = None,
        status_callback: str | None = None,
        status_callback_events: Iterable[str] = ("completed",),
    ) -> dict[str, Any]:
        """Emulate the agent's browser softphone calling the TwiML App (see POST /sandbox/agent-legs)."""
        request = control.agent_leg_request(
            {
                "identity": identity,
                "voice_url": voice_url,
                "params": params or {},
                "to": to,
                "status_callback": status_callback,
                "status_callback_events": list(status_callback_events),
            }
        )
        return self._on_loop(lambda engine: control.call_view(engine.place_agent_leg(request), engine.clock))

    def hang_up(self, sid: str) -> dict[str, Any]:
        """The far end hangs up now: the agent for an agent leg, the callee for a customer leg."""

        def act(engine: Engine) -> dict[str, Any]:
            call = engine.calls[sid]
            if call.direction == "inbound":
                engine.hang_up_agent_leg(call)
            elif call.status == "in-progress":
                engine.callee_hang_up(call)
            return control.call_view(call, engine.clock)

        return self._on_loop(act)

    def wait_for(self, predicate: Callable[[Sandbox], T], timeout: float = 10.0, interval: float = 0.02) -> T:
        """Poll until `predicate(self)` is truthy and return it; TimeoutError otherwise (real seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError("sandbox condition not met in time")
            time.sleep(interval)
