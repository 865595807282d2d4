"""A small local HTTP fake of Twilio's Calls REST API for service and race tests.

The app reaches it through the real twilio-python client (only TWILIO_API_BASE_URL changes). It
records every request and answers in Twilio's wire format; tests script failures per SID. The full
emulator with call play-out is the sandbox (voice/sandbox); this fake only answers REST.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

CALLS = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Calls\.json$")
CALL = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Calls/(?P<sid>CA\w+)\.json$")


@dataclass
class Request:
    method: str
    path: str
    form: dict[str, list[str]]
    at: float = field(default_factory=time.perf_counter)


class FakeTwilio:
    """`keep_alive`: answer in HTTP/1.1 and keep the connection for the next request, as Twilio's API does (the
    benchmarks); by default each request has a connection of its own (HTTP/1.0), as the tests always had."""

    def __init__(self, *, keep_alive: bool = False) -> None:
        self.keep_alive = keep_alive
        self.requests: list[Request] = []
        self.ended: set[str] = set()  # SIDs that answer 21220 to updates
        self.fail_updates: set[str] = set()  # SIDs whose redirects into a conference fail with a 500
        self.invalid_numbers: set[str] = set()
        self.statuses: dict[str, str] = {}
        self.forgotten: set[str] = set()  # SIDs answered with 404 (a carrier that lost the call)
        self.answered_by: dict[str, str] = {}
        self.to: dict[str, str] = {}  # SID -> number, for listing by To
        # Creates to these numbers are placed but the connection is dropped before the answer (ambiguous).
        self.drop_create_answer: set[str] = set()
        self.fail_creates_with: int | None = None  # an HTTP status every create answers with (e.g. 500)
        self.too_many_updates = 0  # the next this many updates answer 429 (Twilio's rate limit)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeTwilio:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def updates(self, sid: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST" and "/Calls/" in r.path
                    and (sid is None or sid in r.path)]

    def creates(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith("/Calls.json")]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if fake.keep_alive else "HTTP/1.0"
            # Headers and body leave in two writes: with Nagle's algorithm on, the body waited for the client's
            # delayed ACK of the headers (40 ms on Linux), which a tenth of the outbox's requests paid in the
            # benchmarks; Twilio's API does not answer that way.
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, code: int, message: str) -> None:
                self._send(status, {"code": code, "message": message, "status": status,
                                    "more_info": f"https://www.twilio.com/docs/errors/{code}"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
                with fake.lock:
                    fake.requests.append(Request("POST", self.path, form))
                if match := CALLS.match(self.path):
                    to = form.get("To", [""])[0]
                    if to in fake.invalid_numbers:
                        return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
                    if fake.fail_creates_with:
                        return self._error(fake.fail_creates_with, 20500, "Internal Server Error")
                    sid = "CA" + uuid.uuid4().hex
                    fake.statuses[sid] = "queued"
                    fake.to[sid] = to
                    if to in fake.drop_create_answer:
                        self.close_connection = True
                        self.connection.shutdown(2)  # placed, but the client never hears so
                        return None
                    return self._send(201, _call_json(match["account"], sid, "queued", to))
                if match := CALL.match(self.path):
                    sid = match["sid"]
                    if sid in fake.forgotten:
                        return self._error(404, 20404, f"The requested resource {self.path} was not found")
                    with fake.lock:
                        limited, fake.too_many_updates = fake.too_many_updates > 0, max(0, fake.too_many_updates - 1)
                    if limited:
                        return self._error(429, 20429, "Too Many Requests")
                    if sid in fake.ended:
                        return self._error(400, 21220, "Call is not in-progress. Cannot redirect.")
                    if sid in fake.fail_updates and "customer-join-conference" in form.get("Url", [""])[0]:
                        return self._error(500, 20500, "Internal Server Error")
                    status = form.get("Status", [""])[0]
                    if status:
                        fake.statuses[sid] = status
                    return self._send(200, _call_json(match["account"], sid, fake.statuses.get(sid, "in-progress")))
                return self._error(404, 20404, "not found")

            def do_GET(self) -> None:
                with fake.lock:
                    fake.requests.append(Request("GET", self.path, {}))
                path, _, query = self.path.partition("?")
                if match := CALL.match(path):
                    sid = match["sid"]
                    if sid in fake.forgotten:
                        return self._error(404, 20404, f"The requested resource {path} was not found")
                    body = _call_json(match["account"], sid, fake.statuses.get(sid, "completed"), fake.to.get(sid))
                    body["answered_by"] = fake.answered_by.get(sid)
                    return self._send(200, body)
                if match := CALLS.match(path):
                    to = parse_qs(query).get("To", [""])[0]
                    sids = [sid for sid, number in reversed(list(fake.to.items())) if number == to]
                    calls = [_call_json(match["account"], sid, fake.statuses.get(sid, "queued"), to) for sid in sids]
                    return self._send(200, {"calls": calls, "page": 0, "page_size": 50, "start": 0, "end": len(calls),
                                            "first_page_uri": path, "next_page_uri": None, "previous_page_uri": None,
                                            "uri": self.path})
                return self._error(404, 20404, "not found")

        return Handler


def _call_json(account: str, sid: str, status: str, to: str | None = "+12025550100") -> dict:
    return {
        "sid": sid, "account_sid": account, "status": status, "to": to, "from": "+12025550199",
        "direction": "outbound-api", "answered_by": None, "duration": None, "api_version": "2010-04-01",
        "date_created": format_datetime(dt.datetime.now(dt.UTC)),
        "uri": f"/2010-04-01/Accounts/{account}/Calls/{sid}.json",
    }
