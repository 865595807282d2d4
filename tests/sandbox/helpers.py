from __future__ import annotations

from typing import Any

from voice.sandbox import Sandbox

TERMINAL = {"completed", "busy", "no-answer", "failed", "canceled"}


def wait_status(
    sandbox: Sandbox, sid: str, statuses: set[str] | str = frozenset(TERMINAL), timeout: float = 10.0
) -> dict[str, Any]:
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)

    def reached(sb: Sandbox) -> dict[str, Any] | None:
        call = sb.call(sid)
        return call if call["status"] in wanted else None

    return sandbox.wait_for(reached, timeout=timeout)


def event_time(call: dict[str, Any], event: str, **detail: Any) -> float:
    """Simulated time of the first timeline entry `event` whose detail matches."""
    for entry in call["timeline"]:
        if entry["event"] == event and all(entry["detail"].get(k) == v for k, v in detail.items()):
            return entry["sim_t"]
    raise AssertionError(f"no {event} {detail} in {[e['event'] for e in call['timeline']]}")
