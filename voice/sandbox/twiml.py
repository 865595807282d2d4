"""TwiML: parse the app's documents and play them out on a call in simulated time.

Supported verbs: <Play loop>, <Say loop>, <Pause length>, <Redirect method>, <Dial action timeLimit> with a
<Conference> noun, <Hangup/>, <Reject/>, and <Gather> (its nested prompts play, then it times out without
input). Anything else is recorded on the call's timeline as unsupported and skipped, so a new verb in the app
shows up in tests instead of crashing the engine.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urljoin

from voice.sandbox.clock import SimClock
from voice.sandbox.config import SandboxConfig
from voice.sandbox.state import ACTIVITY_CONFERENCE, ACTIVITY_HOLD, ACTIVITY_MESSAGE, Participant, SimCall
from voice.sandbox.webhooks import FetchResult

PLAY_LOOP_FOREVER = 1000  # Twilio: loop="0" repeats until hangup, capped at 1000 iterations
MAX_IDLE_DOCUMENTS = 50  # documents in a row that took no time: a <Redirect> loop, ended as an application error
DEFAULT_DIAL_TIME_LIMIT_S = 14400.0
ERROR_HTTP = "11200"  # HTTP retrieval failure
ERROR_DOCUMENT = "12100"  # document parse failure


class TwimlError(ValueError):
    pass


@dataclass(frozen=True)
class Verb:
    name: str
    attrs: dict[str, str]
    text: str
    children: tuple[Verb, ...] = ()


@dataclass(frozen=True)
class Source:
    """Where the next document comes from: a URL to fetch (with extra params) or inline TwiML."""

    kind: str  # voice-url, redirect, rest-redirect, dial-action, twiml
    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def parse(document: str) -> list[Verb]:
    """The verbs of a <Response> document; TwimlError if it is not one."""
    try:
        # The document comes from the app under test, the same trust Twilio gives it; no external entities are
        # resolved by ElementTree.
        root = ET.fromstring(document.strip())  # noqa: S314
    except ET.ParseError as exc:
        raise TwimlError(f"invalid XML: {exc}") from exc
    if root.tag != "Response":
        raise TwimlError(f"root element is <{root.tag}>, not <Response>")
    return [_verb(element) for element in root]


def _verb(element: ET.Element) -> Verb:
    return Verb(
        name=element.tag,
        attrs=dict(element.attrib),
        text=(element.text or "").strip(),
        children=tuple(_verb(child) for child in element),
    )


def _number(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


class CallHost(Protocol):
    """What the interpreter needs from the engine."""

    clock: SimClock

    @property
    def config(self) -> SandboxConfig: ...

    async def fetch_document(self, call: SimCall, source: Source) -> FetchResult: ...

    def document_loaded(self, call: SimCall) -> None: ...

    def set_activity(self, call: SimCall, activity: str) -> None: ...

    def join_conference(self, call: SimCall, name: str, attrs: dict[str, str]) -> Participant: ...

    def leave_conference(self, call: SimCall, reason: str) -> None: ...

    def hangup(self, call: SimCall, status: str, reason: str) -> None: ...

    def application_error(self, call: SimCall, code: str, message: str, url: str | None) -> None: ...


class TwimlRunner:
    """Plays one call's TwiML until it runs out (hang up) or the task is cancelled (REST redirect or hang-up)."""

    def __init__(self, host: CallHost, call: SimCall) -> None:
        self.host = host
        self.call = call
        self._used_fallback = False
        self._idle_documents = 0

    async def run(self, source: Source) -> None:
        next_source: Source | None = source
        while next_source is not None and not self.call.ended:
            loaded = await self._load(next_source)
            if loaded is None:
                return  # application error: the call has been ended
            verbs, document_url = loaded
            self.host.document_loaded(self.call)
            self._idle_documents += 1
            next_source = await self._execute(verbs, document_url)
            if self._idle_documents > MAX_IDLE_DOCUMENTS:
                self.host.application_error(
                    self.call, ERROR_DOCUMENT, "redirect loop: documents take no time", document_url
                )
                return
        if not self.call.ended:
            self.host.hangup(self.call, "completed", "end of TwiML")

    # -- loading -------------------------------------------------------------------------------------

    async def _load(self, source: Source) -> tuple[list[Verb], str | None] | None:
        if source.kind == "twiml":
            try:
                return parse(source.twiml or ""), None
            except TwimlError as exc:
                return await self._fail(ERROR_DOCUMENT, str(exc), None)
        result = await self.host.fetch_document(self.call, source)
        if not result.ok:
            return await self._fail(ERROR_HTTP, result.error or "fetch failed", result.url)
        try:
            return parse(result.body), result.url
        except TwimlError as exc:
            return await self._fail(ERROR_DOCUMENT, str(exc), result.url)

    async def _fail(self, code: str, message: str, url: str | None) -> tuple[list[Verb], str | None] | None:
        """Twilio's failure path: the FallbackUrl once (with ErrorCode/ErrorUrl), else an application error."""
        call = self.call
        call.note("twiml-error", self.host.clock.now(), code=code, message=message, url=url)
        if call.fallback_url and not self._used_fallback:
            self._used_fallback = True
            extra = {"ErrorCode": code, "ErrorUrl": url or ""}
            return await self._load(
                Source(kind="fallback", url=call.fallback_url, method=call.fallback_method, extra=extra)
            )
        self.host.application_error(call, code, message, url)
        return None

    # -- executing -----------------------------------------------------------------------------------

    async def _execute(self, verbs: list[Verb], document_url: str | None) -> Source | None:
        """Run verbs in order; returns the next document to load, or None when this one ran out (or hung up)."""
        for verb in verbs:
            if self.call.ended:
                return None
            self.call.note("twiml", self.host.clock.now(), verb=verb.name, attrs=verb.attrs, text=verb.text[:200])
            handler = getattr(self, f"_verb_{verb.name.lower()}", None)
            if handler is None:
                self.call.note("twiml-unsupported", self.host.clock.now(), verb=verb.name)
                continue
            outcome = await handler(verb, document_url)
            if isinstance(outcome, Source):
                return outcome
            if outcome is _STOP:
                return None
        return None

    async def _play_for(self, sim_s: float, activity: str) -> None:
        self._idle_documents = 0
        self.host.set_activity(self.call, activity)
        await self.host.clock.sleep(sim_s)

    async def _verb_play(self, verb: Verb, _url: str | None) -> None:
        loops = int(_number(verb.attrs.get("loop"), 1))
        if loops <= 0:
            await self._play_for(PLAY_LOOP_FOREVER * self.host.config.play_s, ACTIVITY_HOLD)
        else:
            await self._play_for(loops * self.host.config.play_s, ACTIVITY_MESSAGE)

    async def _verb_say(self, verb: Verb, _url: str | None) -> None:
        loops = int(_number(verb.attrs.get("loop"), 1))
        once = max(1.0, len(verb.text.split()) / self.host.config.words_per_s)
        if loops <= 0:
            await self._play_for(PLAY_LOOP_FOREVER * once, ACTIVITY_HOLD)
        else:
            await self._play_for(loops * once, ACTIVITY_MESSAGE)

    async def _verb_pause(self, verb: Verb, _url: str | None) -> None:
        await self._play_for(max(0.0, _number(verb.attrs.get("length"), 1.0)), ACTIVITY_HOLD)

    async def _verb_gather(self, verb: Verb, url: str | None) -> object | None:
        for child in verb.children:
            if child.name in ("Say", "Play", "Pause"):
                await getattr(self, f"_verb_{child.name.lower()}")(child, url)
        # Nobody presses anything: wait for the timeout, then carry on with the next verb.
        await self._play_for(max(0.0, _number(verb.attrs.get("timeout"), 5.0)), ACTIVITY_HOLD)
        return None

    async def _verb_redirect(self, verb: Verb, url: str | None) -> Source | object:
        target = self._resolve(url, verb.text)
        if target is None:
            self.host.application_error(self.call, ERROR_DOCUMENT, "<Redirect> without a usable URL", url)
            return _STOP
        return Source(kind="redirect", url=target, method=(verb.attrs.get("method") or "POST").upper())

    async def _verb_hangup(self, _verb: Verb, _url: str | None) -> object:
        self.host.hangup(self.call, "completed", "<Hangup>")
        return _STOP

    async def _verb_reject(self, _verb: Verb, _url: str | None) -> object:
        # Rejecting before answer sounds busy to the caller; after answer it is just a hang-up.
        self.host.hangup(self.call, "busy" if self.call.answered_t is None else "completed", "<Reject>")
        return _STOP

    async def _verb_dial(self, verb: Verb, url: str | None) -> Source | object | None:
        room = next((child for child in verb.children if child.name == "Conference"), None)
        started = self.host.clock.now()
        if room is None or not room.text:
            self.call.note("twiml-unsupported", started, verb="Dial", detail="only <Dial><Conference> is emulated")
            dial_status = "failed"
        else:
            dial_status = await self._conference(verb, room)
        action = verb.attrs.get("action")
        if not action:
            return None
        target = self._resolve(url, action)
        if target is None:
            self.host.application_error(self.call, ERROR_DOCUMENT, "<Dial action> is not a usable URL", url)
            return _STOP
        extra = {"DialCallStatus": dial_status, "DialCallDuration": str(int(self.host.clock.now() - started))}
        return Source(kind="dial-action", url=target, method=(verb.attrs.get("method") or "POST").upper(), extra=extra)

    async def _conference(self, dial: Verb, room: Verb) -> str:
        self._idle_documents = 0
        self.host.set_activity(self.call, ACTIVITY_CONFERENCE)
        participant = self.host.join_conference(self.call, room.text, room.attrs)
        limit = _number(dial.attrs.get("timeLimit"), DEFAULT_DIAL_TIME_LIMIT_S)
        try:
            released = await self.host.clock.sleep_until(self.host.clock.now() + limit, wake=participant.left)
        finally:
            # Normally the engine has already taken the call out (hang-up, redirect); this covers the rest.
            self.host.leave_conference(self.call, "participant_updated_via_api")
        if not released:
            self.call.note("dial-time-limit", self.host.clock.now())
        return "completed"

    def _resolve(self, base: str | None, target: str) -> str | None:
        target = target.strip()
        if not target:
            return None
        resolved = urljoin(base, target) if base else target
        return resolved if resolved.startswith(("http://", "https://")) else None


_STOP = object()  # a verb ended the call (or the document) for good


async def run_safely(runner: TwimlRunner, source: Source) -> None:
    """Run TwiML; a bug or surprise here ends the one call as an application error, never the engine."""
    try:
        await runner.run(source)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the engine must survive anything a document does to it
        runner.call.note("engine-error", runner.host.clock.now(), error=repr(exc))
        if not runner.call.ended:
            runner.host.application_error(runner.call, ERROR_DOCUMENT, f"sandbox error: {exc!r}", None)
