"""How simulated callees behave: the population model shared by the sandbox and the pacing simulator.

Pure Python, no Django, no I/O: the sandbox draws one `Behaviour` per dialled number and plays it out
over HTTP; the pacing simulator draws the same behaviours and plays them out in simulated time. The
default is the reference B2B population of `shared/reference/pacing-and-performance.md` §6.1.

All durations are seconds of simulated time.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

Kind = Literal["human", "machine", "fax", "unknown", "no_answer", "busy", "failed"]

# The verdicts Twilio's AsyncAmd sends for a machine, per MachineDetection mode (twilio.md §3.3).
MACHINE_END_VALUES = ("machine_end_beep", "machine_end_silence", "machine_end_other")


@dataclass(frozen=True)
class Behaviour:
    """What one callee does when dialled. Times are measured from the moment the line starts ringing."""

    kind: Kind
    pickup_s: float | None = None  # when the callee (or machine) answers; None = never answers
    reject_s: float | None = None  # busy/failed: when the carrier reports it
    amd_s: float | None = None  # AMD verdict latency after pickup (Enable mode)
    greeting_s: float | None = None  # machine greeting length (DetectMessageEnd verdict comes after it)
    machine_end: str = "machine_end_beep"  # which machine_end_* value DetectMessageEnd reports
    talk_s: float | None = None  # a human: how long they talk once connected to an agent
    patience_s: float | None = None  # a human: how long they wait on hold before hanging up

    def as_dict(self) -> dict:
        return asdict(self)


def _lognormal_params(mean: float, cv: float) -> tuple[float, float]:
    """mu and sigma of the underlying normal for a lognormal with this mean and coefficient of variation."""
    sigma2 = math.log(1.0 + cv * cv)
    return math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)


@dataclass(frozen=True)
class Population:
    """Shares of outcomes and the distributions of their timings.

    Shares need not sum to exactly 1: they are normalised when drawing.
    """

    human: float = 0.08
    machine: float = 0.25
    no_answer: float = 0.57
    busy: float = 0.05
    failed: float = 0.05
    fax: float = 0.0
    unknown: float = 0.0  # answered, but AMD cannot tell (a silent callee)

    human_pickup_s: tuple[float, float] = (4.0, 20.0)  # uniform
    machine_pickup_s: tuple[float, float] = (15.0, 25.0)  # uniform
    busy_s: float = 4.0
    failed_s: float = 1.0
    amd_human_s: tuple[float, float] = (3.0, 1.0)  # normal (mean, sd), clipped to [0.5, 10]
    amd_machine_s: float = 4.0
    amd_unknown_s: float = 5.0  # MachineDetectionSilenceTimeout default
    greeting_s: tuple[float, float] = (6.0, 14.0)  # uniform; DetectMessageEnd verdict after the greeting
    talk_mean_s: float = 180.0
    talk_cv: float = 0.8
    wrap_s: tuple[float, float] = (20.0, 40.0)  # uniform; agent behaviour, used by the simulator
    patience_s: tuple[float, float] = (8.0, 30.0)  # uniform; a human on hold hangs up after this
    machine_end_weights: tuple[float, float, float] = (0.7, 0.2, 0.1)  # beep / silence / other

    # -- drawing ---------------------------------------------------------------------------------

    def draw(self, rng: random.Random) -> Behaviour:
        kinds: tuple[Kind, ...] = ("human", "machine", "fax", "unknown", "no_answer", "busy", "failed")
        weights = (self.human, self.machine, self.fax, self.unknown, self.no_answer, self.busy, self.failed)
        kind = rng.choices(kinds, weights=weights)[0]
        return self.draw_kind(rng, kind)

    def draw_kind(self, rng: random.Random, kind: Kind) -> Behaviour:
        """A behaviour of the given kind with timings drawn from this population."""
        if kind == "human":
            return Behaviour(
                kind="human",
                pickup_s=rng.uniform(*self.human_pickup_s),
                amd_s=min(10.0, max(0.5, rng.gauss(*self.amd_human_s))),
                talk_s=self.draw_talk(rng),
                patience_s=rng.uniform(*self.patience_s),
            )
        if kind in ("machine", "fax"):
            return Behaviour(
                kind=kind,
                pickup_s=rng.uniform(*self.machine_pickup_s),
                amd_s=self.amd_machine_s,
                greeting_s=rng.uniform(*self.greeting_s),
                machine_end=rng.choices(MACHINE_END_VALUES, weights=self.machine_end_weights)[0],
            )
        if kind == "unknown":
            return Behaviour(
                kind="unknown",
                pickup_s=rng.uniform(*self.human_pickup_s),
                amd_s=self.amd_unknown_s,
                talk_s=self.draw_talk(rng),
                patience_s=rng.uniform(*self.patience_s),
            )
        if kind == "busy":
            return Behaviour(kind="busy", reject_s=self.busy_s)
        if kind == "failed":
            return Behaviour(kind="failed", reject_s=self.failed_s)
        return Behaviour(kind="no_answer")

    def draw_talk(self, rng: random.Random) -> float:
        mu, sigma = _lognormal_params(self.talk_mean_s, self.talk_cv)
        return rng.lognormvariate(mu, sigma)

    def draw_wrap(self, rng: random.Random) -> float:
        return rng.uniform(*self.wrap_s)

    # -- summary figures -------------------------------------------------------------------------

    @property
    def mean_talk_s(self) -> float:
        return self.talk_mean_s

    @property
    def mean_wrap_s(self) -> float:
        return sum(self.wrap_s) / 2.0

    def upper_bound_per_agent_hour(self) -> float:
        """The physical bound: an agent who never waits talks 3600 / (talk + wrap) times an hour."""
        return 3600.0 / (self.mean_talk_s + self.mean_wrap_s)

    def with_overrides(self, **changes) -> Population:
        return replace(self, **changes)


REFERENCE_B2B = Population()

# Shares used by the demo and e2e tests when nothing else is asked: a livelier list than the B2B
# reference so a demo agent talks to someone within a minute.
DEMO = Population(human=0.35, machine=0.3, no_answer=0.25, busy=0.05, failed=0.05, human_pickup_s=(2.0, 8.0),
                  machine_pickup_s=(3.0, 8.0), talk_mean_s=45.0, talk_cv=0.5)


@dataclass
class PopulationStats:
    """Measured shares and means, e.g. from a campaign's own history, to build a Population from."""

    human: float
    machine: float
    no_answer: float
    busy_failed: float
    talk_mean_s: float
    wrap_mean_s: float
    extra: dict = field(default_factory=dict)

    def to_population(self, base: Population = REFERENCE_B2B) -> Population:
        half = self.busy_failed / 2.0
        wrap_half_width = min(10.0, self.wrap_mean_s / 2.0)
        return replace(
            base,
            human=self.human,
            machine=self.machine,
            no_answer=self.no_answer,
            busy=half,
            failed=half,
            talk_mean_s=self.talk_mean_s,
            wrap_s=(self.wrap_mean_s - wrap_half_width, self.wrap_mean_s + wrap_half_width),
        )
