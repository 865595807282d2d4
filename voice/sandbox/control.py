"""Local test controls under /sandbox/: inspect calls, pin behaviours, place agent legs, tune misbehaviour.

No Twilio auth here on purpose: these are a test harness's knobs, like a payment provider's test-mode
dashboard. Bind the sandbox to localhost (the default) and never expose it.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from voice.pacing.population import Population
from voice.sandbox.behaviours import MAGIC_NUMBERS
from voice.sandbox.clock import SimClock
from voice.sandbox.engine import AgentLegRequest, Engine
from voice.sandbox.recordings import SimRecording
from voice.sandbox.rest import ENGINE, Handler
from voice.sandbox.state import STATUS_EVENTS, Conference, Delivery, SimCall, TimelineEntry


def _wall(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _entry(entry: TimelineEntry, clock: SimClock) -> dict[str, Any]:
    return {
        "event": entry.event,
        "sim_t": round(entry.sim_t, 3),
        "sim_time": clock.datetime_at(entry.sim_t).isoformat(),
        "wall": _wall(entry.wall),
        "detail": entry.detail,
    }


def _delivery(delivery: Delivery) -> dict[str, Any]:
    out = asdict(delivery)
    out["sim_t"] = round(delivery.sim_t, 3)
    out["wall"] = _wall(delivery.wall)
    out["failed"] = delivery.failed
    return out


def call_view(call: SimCall, clock: SimClock) -> dict[str, Any]:
    """The sandbox's own view of a call: what Twilio knows plus what the callee is and what was sent."""
    return {
        "sid": call.sid,
        "to": call.to,
        "from": call.from_,
        "direction": call.direction,
        "identity": call.identity,
        "status": call.status,
        "answered_by": call.answered_by,
        "amd_duration_ms": call.amd_duration_ms,
        "behaviour": call.behaviour.as_dict() if call.behaviour else None,
        "behaviour_kind": call.behaviour.kind if call.behaviour else None,
        "behaviour_source": call.behaviour_source,
        "conference_sid": call.conference_sid,
        "activity": call.activity,
        "end_reason": call.end_reason,
        "application_error": call.app_error,
        "sip_response_code": call.sip_response_code,
        "queue_time_ms": call.queue_time_ms,
        "created_t": call.created_t,
        "started_t": call.started_t,
        "answered_t": call.answered_t,
        "ended_t": call.ended_t,
        "duration_s": call.duration_s,
        "url": call.url,
        "status_callback": call.status_callback,
        "status_callback_events": sorted(call.status_callback_events),
        "machine_detection": call.machine_detection,
        "async_amd": call.async_amd,
        "timeline": [_entry(e, clock) for e in call.timeline],
        "webhooks": [_delivery(d) for d in call.deliveries],
    }


def conference_view(conference: Conference, clock: SimClock) -> dict[str, Any]:
    return {
        "sid": conference.sid,
        "friendly_name": conference.friendly_name,
        "status": conference.status,
        "reason_ended": conference.reason_ended,
        "participants": [
            {
                "call_sid": p.call_sid,
                "label": p.label,
                "muted": p.muted,
                "hold": p.hold,
                "start_conference_on_enter": p.start_conference_on_enter,
                "end_conference_on_exit": p.end_conference_on_exit,
                "coaching": p.coaching,
                "call_sid_to_coach": p.call_sid_to_coach,
                "joined_t": p.joined_t,
                "hears": conference.hears(p.call_sid),
            }
            for p in conference.participants.values()
        ],
        # Who hears whom right now, by call sid: what tests assert a whisper by (the customer must not hear it).
        "hears": {sid: conference.hears(sid) for sid in conference.participants},
        "record": conference.record,
        "status_callback": conference.status_callback,
        "status_callback_events": sorted(conference.status_callback_events),
        "history": [_entry(e, clock) for e in conference.history],
        "webhooks": [_delivery(d) for d in conference.deliveries],
    }


def recording_view(recording: SimRecording, clock: SimClock) -> dict[str, Any]:
    return {
        "sid": recording.sid,
        "call_sid": recording.call_sid,
        "conference_sid": recording.conference_sid,
        "status": recording.status,
        "source": recording.source,
        "channels": recording.channels,
        "duration_s": recording.duration_s(clock.now()),
        "started_t": recording.started_t,
        "ended_t": recording.ended_t,
        "history": [_entry(e, clock) for e in recording.history],
        "webhooks": [_delivery(d) for d in recording.deliveries],
    }


def stats_view(engine: Engine) -> dict[str, Any]:
    live: dict[str, int] = {}
    for call in engine.calls.values():
        if not call.ended:
            live[call.status] = live.get(call.status, 0) + 1
    counters = engine.stats
    return {
        "sim_time_s": round(engine.clock.now(), 3),
        "time_scale": engine.config.time_scale,
        "seed": engine.seed,
        "cps": engine.config.cps,
        "calls": {
            "created": counters["calls_created"],
            "agent_legs": counters["agent_legs"],
            "live": sum(live.values()),
            "by_status": {**live, **engine.ended_by_status},
        },
        "conferences": {
            "active": sum(1 for c in engine.rooms.by_sid.values() if c.active),
            "total": len(engine.rooms.by_sid),
        },
        "webhooks": {
            "sent": counters["webhooks_sent"],
            "failed": counters["webhook_failures"],
            "dropped": counters["webhooks_dropped"],
            "duplicated": counters["webhooks_duplicated"],
            "pending": engine.sender.pending,
        },
        "application_errors": counters["application_errors"],
        "engine_errors": counters["engine_errors"],
        "rest": {"requests": counters["rest_requests"], "errors_injected": counters["rest_errors_injected"]},
    }


def config_changes(payload: dict[str, Any], current: Population) -> dict[str, Any]:
    """JSON config changes -> SandboxConfig values (population overrides merge into the current one)."""
    changes = dict(payload)
    if "population" in changes:
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(changes["population"]).items()}
        changes["population"] = current.with_overrides(**overrides)
    if "rest_error_kind" in changes:
        changes["rest_error_kind"] = str(changes["rest_error_kind"])
    return changes


def agent_leg_request(payload: dict[str, Any]) -> AgentLegRequest:
    identity = str(payload.get("identity") or "")
    if not identity or any(ch.isspace() for ch in identity):
        raise ValueError("identity is required and may not contain spaces")
    voice_url = str(payload.get("voice_url") or "")
    if not voice_url.startswith(("http://", "https://")):
        raise ValueError("voice_url must be an absolute http(s) URL")
    params = payload.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("params must be an object")
    events = payload.get("status_callback_events") or ["completed"]
    if isinstance(events, str):
        events = events.split()
    if set(events) - set(STATUS_EVENTS):
        raise ValueError(f"status_callback_events must be among {', '.join(STATUS_EVENTS)}")
    return AgentLegRequest(
        identity=identity,
        voice_url=voice_url,
        method=str(payload.get("method") or "POST").upper(),
        to=str(payload["to"]) if payload.get("to") else None,
        params={str(k): str(v) for k, v in params.items()},
        status_callback=str(payload["status_callback"]) if payload.get("status_callback") else None,
        status_callback_method=str(payload.get("status_callback_method") or "POST").upper(),
        status_callback_events=frozenset(events),
    )


# -- handlers ---------------------------------------------------------------------------------------

TOKEN_HEADER = "X-Sandbox-Token"  # noqa: S105 - a header name, not a secret
CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": f"Content-Type, {TOKEN_HEADER}",
    "Vary": "Origin",
}
# Harmless without the token: a liveness probe, and the redirect to the index.
OPEN_PATHS = ("/sandbox/health", "/sandbox")


def _cors(request: web.Request) -> dict[str, str]:
    """CORS for the app's own pages only (config.allowed_origins), never a wildcard: any other web page the
    agent opens must not be able to drive the sandbox from their browser."""
    origin = request.headers.get("Origin", "")
    if origin and origin in request.app[ENGINE].config.allowed_origins:
        return {**CORS_HEADERS, "Access-Control-Allow-Origin": origin}
    return {"Vary": "Origin"}


def _is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def _token_ok(request: web.Request) -> bool:
    expected = request.app[ENGINE].config.control_token
    if not expected:
        return True
    given = request.headers.get(TOKEN_HEADER) or request.query.get("token", "")
    return hmac.compare_digest(given.encode(), expected.encode())


@web.middleware
async def control_guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The control API (/sandbox/...) answers loopback clients only, with the per-run token (header
    X-Sandbox-Token, or ?token= for the index page in a browser). It can place agent legs that make the sandbox
    send signed webhooks, so it is no open service. The demo hands the token to the console's softphone."""
    if not request.path.startswith("/sandbox"):
        return await handler(request)
    cors = _cors(request)
    if not _is_loopback(request.remote):
        return web.json_response({"error": "the sandbox control API answers loopback clients only"}, status=403,
                                 headers=cors)
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=cors)
    if request.path not in OPEN_PATHS and not _token_ok(request):
        return web.json_response({"error": f"missing or wrong {TOKEN_HEADER}"}, status=401, headers=cors)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(cors)
        raise
    response.headers.update(cors)
    return response


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"invalid JSON: {exc}"}), content_type="application/json"
        ) from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "expected a JSON object"}), content_type="application/json")
    return body


def _call(request: web.Request) -> SimCall:
    call = request.app[ENGINE].calls.get(request.match_info["sid"])
    if call is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "no such call"}), content_type="application/json")
    return call


async def index(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    rows = []
    for call in reversed(list(engine.calls.values())):
        if call.ended and len(rows) >= 50:
            continue
        callee = call.behaviour.kind if call.behaviour else call.behaviour_source
        cells = (
            call.sid,
            call.direction,
            call.to or call.from_,
            call.status,
            callee,
            call.answered_by or "",
            call.activity,
            call.conference_sid or "",
            call.end_reason or "",
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in cells) + "</tr>")
    stats = stats_view(engine)
    # The links carry the token the page was opened with, so a browser can follow them.
    token = request.query.get("token", "")
    q = html.escape(f"?token={token}") if token else ""
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2"><title>Twilio sandbox</title>
<style>body{{font-family:sans-serif;margin:1em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}}</style></head><body>
<h1>Twilio sandbox</h1>
<p>simulated time {stats["sim_time_s"]:.1f} s &middot; time scale {stats["time_scale"]:g}&times; &middot;
seed {stats["seed"]} &middot; {stats["cps"]:g} CPS &middot; live calls {stats["calls"]["live"]} &middot;
webhook failures {stats["webhooks"]["failed"]}</p>
<table><tr><th>sid</th><th>direction</th><th>number</th><th>status</th><th>callee</th><th>AMD</th>
<th>hearing</th><th>conference</th><th>ended because</th></tr>
{"".join(rows)}</table>
<p>JSON: <a href="calls{q}">calls</a> &middot; <a href="conferences{q}">conferences</a> &middot;
<a href="stats{q}">stats</a> &middot; <a href="config{q}">config</a> &middot; <a href="behaviours{q}">behaviours</a></p>
</body></html>"""
    return web.Response(text=page, content_type="text/html")


async def to_index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/sandbox/")


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "account_sid": request.app[ENGINE].config.account_sid})


async def list_calls(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    query = request.query
    calls = [
        call_view(c, engine.clock)
        for c in engine.calls.values()
        if query.get("status", c.status) == c.status
        and query.get("to", c.to) == c.to
        and (query.get("live") not in ("1", "true") or not c.ended)
    ]
    return web.json_response({"calls": calls})


async def get_call(request: web.Request) -> web.Response:
    return web.json_response(call_view(_call(request), request.app[ENGINE].clock))


async def hang_up_call(request: web.Request) -> web.Response:
    """The callee hangs up now (only an answered call has someone to hang up)."""
    engine = request.app[ENGINE]
    call = _call(request)
    if call.status != "in-progress":
        return _error(409, f"call is {call.status}, not in-progress")
    engine.callee_hang_up(call)
    return web.json_response(call_view(call, engine.clock))


async def list_conferences(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    name = request.query.get("friendly_name")
    rooms = [conference_view(c, engine.clock) for c in engine.rooms.by_sid.values() if name in (None, c.friendly_name)]
    return web.json_response({"conferences": rooms})


async def get_conference(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    conference = engine.rooms.by_sid.get(request.match_info["sid"])
    if conference is None:
        return _error(404, "no such conference")
    return web.json_response(conference_view(conference, engine.clock))


async def list_recordings(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    call_sid = request.query.get("call_sid")
    items = [
        recording_view(r, engine.clock)
        for r in engine.recorder.by_sid.values()
        if call_sid in (None, r.call_sid)
    ]
    return web.json_response({"recordings": items})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(stats_view(request.app[ENGINE]))


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(request.app[ENGINE].config.runtime_dict())


async def update_config(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    payload = await _json_body(request)
    try:
        config = engine.update_config(config_changes(payload, engine.config.population))
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))
    return web.json_response(config.runtime_dict())


async def get_behaviours(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    return web.json_response(
        {
            "overrides": {n: b.as_dict() for n, b in engine.book.overrides.items()},
            "magic": {n: b.as_dict() for n, b in MAGIC_NUMBERS.items()},
        }
    )


async def set_behaviours(request: web.Request) -> web.Response:
    """{"+1...": {"kind": "human", "pickup_s": 1, ...}}: pins what the next calls to those numbers do."""
    engine = request.app[ENGINE]
    payload = await _json_body(request)
    result = {}
    try:
        for number, spec in payload.items():
            if not isinstance(spec, dict):
                raise ValueError(f"{number}: expected an object")
            result[number] = engine.book.set_override(number, spec, engine.config.population).as_dict()
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"overrides": result})


async def clear_behaviours(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    number = request.match_info.get("number")
    if number is None:
        engine.book.overrides.clear()
    else:
        engine.book.overrides.pop(number, None)
    return web.Response(status=204)


async def place_agent_leg(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    payload = await _json_body(request)
    try:
        leg = agent_leg_request(payload)
    except ValueError as exc:
        return _error(400, str(exc))
    call = engine.place_agent_leg(leg)
    return web.json_response(call_view(call, engine.clock), status=201)


async def hang_up_agent_leg(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    call = _call(request)
    if call.direction != "inbound":
        return _error(404, "not an agent leg")
    engine.hang_up_agent_leg(call)
    return web.json_response(call_view(call, engine.clock))


async def reset(request: web.Request) -> web.Response:
    request.app[ENGINE].reset()
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/sandbox/", index)
    r.add_get("/sandbox", to_index)
    r.add_get("/sandbox/health", health)
    r.add_get("/sandbox/calls", list_calls)
    r.add_get("/sandbox/calls/{sid}", get_call)
    r.add_post("/sandbox/calls/{sid}/hangup", hang_up_call)
    r.add_get("/sandbox/conferences", list_conferences)
    r.add_get("/sandbox/conferences/{sid}", get_conference)
    r.add_get("/sandbox/recordings", list_recordings)
    r.add_get("/sandbox/stats", stats)
    r.add_get("/sandbox/config", get_config)
    r.add_post("/sandbox/config", update_config)
    r.add_get("/sandbox/behaviours", get_behaviours)
    r.add_post("/sandbox/behaviours", set_behaviours)
    r.add_delete("/sandbox/behaviours", clear_behaviours)
    r.add_delete("/sandbox/behaviours/{number}", clear_behaviours)
    r.add_post("/sandbox/agent-legs", place_agent_leg)
    r.add_delete("/sandbox/agent-legs/{sid}", hang_up_agent_leg)
    r.add_post("/sandbox/reset", reset)
