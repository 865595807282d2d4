"""The sandbox's knobs: one dataclass, validated, some of them changeable while it runs."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from voice.pacing.population import DEMO, Population

RestErrorKind = Literal["429", "500"]

# What may change while calls are running (POST /sandbox/config, Sandbox.update_config). Identity, credentials
# and the listening socket are fixed for the life of a server.
RUNTIME_FIELDS = frozenset(
    {
        "cps",
        "time_scale",
        "population",
        "duplicate_rate",
        "jitter_s",
        "drop_status_rate",
        "rest_error_rate",
        "rest_error_kind",
        "rest_latency_s",
        "webhook_timeout_s",
        "ring_delay_s",
        "play_s",
        "words_per_s",
        "machine_hangup_after_s",
        "max_message_s",
    }
)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the sandbox needs. Durations are simulated seconds unless the name says `real`.

    Simulated time runs `time_scale` times faster than the wall clock: a 20 s ring at time_scale 50 takes
    0.4 s of real time. HTTP timings (REST latency, the webhook read timeout) are real seconds, because they
    describe the app's HTTP behaviour, not the callee's.
    """

    host: str = "127.0.0.1"
    port: int = 0  # 0 = let the OS pick a free port (see Sandbox.base_url)
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "sandbox-auth-token"  # noqa: S105 - a well-known test secret, like the account SID
    api_key_sid: str | None = None  # SK...; accepted for Basic auth alongside the account SID
    api_key_secret: str | None = None
    application_sid: str = "AP" + "0" * 32  # reported as ApplicationSid on agent (softphone) legs
    # The control API (/sandbox/...) wants this in X-Sandbox-Token; a fresh random one per run unless given.
    control_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # Origins (scheme://host:port) whose pages may call the control API from a browser: the app's own.
    allowed_origins: tuple[str, ...] = ()

    cps: float = 1.0  # calls leaving the queue per simulated second (Twilio's account CPS)
    time_scale: float = 1.0
    seed: int | None = None  # None = a random seed, reported by /sandbox/stats so a run can be replayed
    population: Population = field(default=DEMO)

    # Misbehaviour, the way real Twilio does it on a bad day.
    duplicate_rate: float = 0.0  # share of callbacks delivered twice (same body, same idempotency token)
    jitter_s: float = 0.0  # each callback waits uniform(0, jitter_s) simulated seconds: reorders them
    drop_status_rate: float = 0.0  # share of status/conference callbacks never sent (never a TwiML fetch)
    rest_error_rate: float = 0.0  # share of REST requests refused before being processed
    rest_error_kind: RestErrorKind = "429"  # 429 = code 20429 (safe to retry), 500 = internal error
    rest_latency_s: float = 0.0  # real seconds added to every REST response
    webhook_timeout_s: float = 15.0  # real seconds; Twilio's default read timeout

    # How long things take on the line.
    ring_delay_s: float = 1.0  # initiated -> ringing
    play_s: float = 5.0  # one iteration of <Play> (the sandbox does not download media)
    words_per_s: float = 2.5  # <Say> speed
    machine_hangup_after_s: float = 5.0  # a machine hears this much hold audio after its greeting, then hangs up
    max_message_s: float = 120.0  # a machine records at most this long after its greeting

    def __post_init__(self) -> None:
        problems = validation_errors(self)
        if problems:
            raise ValueError("; ".join(problems))

    def updated(self, changes: dict[str, Any]) -> SandboxConfig:
        """A copy with runtime changes applied (and validated). Unknown or fixed fields raise ValueError."""
        bad = sorted(set(changes) - RUNTIME_FIELDS)
        if bad:
            raise ValueError(f"cannot change at runtime: {', '.join(bad)}")
        return replace(self, **changes)

    def runtime_dict(self) -> dict[str, Any]:
        """The config as JSON-friendly values, secrets left out (for GET /sandbox/config)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("auth_token", "api_key_secret", "control_token"):
                continue
            value = getattr(self, f.name)
            out[f.name] = asdict(value) if isinstance(value, Population) else value
        return out


def validation_errors(config: SandboxConfig) -> list[str]:
    problems = []
    if not (config.account_sid.startswith("AC") and len(config.account_sid) == 34):
        problems.append("account_sid must be AC followed by 32 hex digits")
    if not 0 <= config.port <= 65535:
        problems.append("port must be 0..65535")
    if config.cps <= 0:
        problems.append("cps must be > 0")
    if config.time_scale <= 0:
        problems.append("time_scale must be > 0")
    for name in ("duplicate_rate", "drop_status_rate", "rest_error_rate"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            problems.append(f"{name} must be between 0 and 1")
    for name in ("jitter_s", "rest_latency_s", "ring_delay_s", "play_s", "machine_hangup_after_s", "max_message_s"):
        if getattr(config, name) < 0:
            problems.append(f"{name} must be >= 0")
    if config.webhook_timeout_s <= 0 or config.words_per_s <= 0:
        problems.append("webhook_timeout_s and words_per_s must be > 0")
    if config.rest_error_kind not in ("429", "500"):
        problems.append("rest_error_kind must be '429' or '500'")
    if (config.api_key_sid is None) != (config.api_key_secret is None):
        problems.append("api_key_sid and api_key_secret go together")
    if not isinstance(config.population, Population):
        problems.append("population must be a Population")
    return problems
