"""Who answers: magic test numbers, per-number overrides and seeded draws from the population."""

from __future__ import annotations

import random
import re
from dataclasses import fields, replace
from typing import Any

from voice.pacing.population import MACHINE_END_VALUES, Behaviour, Population

E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# Twilio's own test-credential magic number for "invalid To" (error 21211); rejected synchronously.
INVALID_NUMBER = "+15005550001"

# NANP fictional numbers (555-0100..0199) are valid for libphonenumber, so the app's own E.164 checks pass them.
MAGIC_NUMBERS: dict[str, Behaviour] = {
    "+12025550100": Behaviour(kind="human", pickup_s=3.0, amd_s=2.0, talk_s=30.0, patience_s=30.0),
    "+12025550101": Behaviour(kind="machine", pickup_s=3.0, amd_s=4.0, greeting_s=8.0, machine_end="machine_end_beep"),
    "+12025550102": Behaviour(
        kind="machine", pickup_s=3.0, amd_s=4.0, greeting_s=8.0, machine_end="machine_end_silence"
    ),
    "+12025550103": Behaviour(kind="machine", pickup_s=3.0, amd_s=4.0, greeting_s=8.0, machine_end="machine_end_other"),
    "+12025550104": Behaviour(kind="fax", pickup_s=3.0, amd_s=3.0, greeting_s=8.0),
    "+12025550105": Behaviour(kind="unknown", pickup_s=3.0, amd_s=5.0, talk_s=30.0, patience_s=30.0),
    "+12025550106": Behaviour(kind="no_answer"),
    "+12025550107": Behaviour(kind="busy", reject_s=4.0),
    "+12025550108": Behaviour(kind="failed", reject_s=1.0),
    "+12025550109": Behaviour(kind="human", pickup_s=2.0, amd_s=1.5, talk_s=30.0, patience_s=3.0),
}

KINDS = ("human", "machine", "fax", "unknown", "no_answer", "busy", "failed")
_BEHAVIOUR_FIELDS = {f.name for f in fields(Behaviour)}


def is_valid_to(number: str) -> bool:
    return bool(E164.match(number)) and number != INVALID_NUMBER


def behaviour_from_spec(spec: dict[str, Any], rng: random.Random, population: Population) -> Behaviour:
    """A Behaviour from a partial JSON spec: timings not given are drawn from the population for that kind."""
    unknown = set(spec) - _BEHAVIOUR_FIELDS
    if unknown:
        raise ValueError(f"unknown behaviour fields: {', '.join(sorted(unknown))}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if "machine_end" in spec and spec["machine_end"] not in MACHINE_END_VALUES:
        raise ValueError(f"machine_end must be one of {', '.join(MACHINE_END_VALUES)}")
    for name, value in spec.items():
        if name.endswith("_s") and value is not None and (not isinstance(value, int | float) or value < 0):
            raise ValueError(f"{name} must be a non-negative number or null")
    base = population.draw_kind(rng, kind)
    return replace(base, **{k: (float(v) if k.endswith("_s") and v is not None else v) for k, v in spec.items()})


class BehaviourBook:
    """Decides each dialled number's behaviour.

    Order of precedence: a runtime override, a magic number, then a draw from the population. Draws are
    seeded by (seed, number, how many times this number was dialled), so a run is reproducible even when
    the app places calls concurrently in a different order, and a redial can turn out differently.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.overrides: dict[str, Behaviour] = {}
        self._dial_counts: dict[str, int] = {}

    def reset(self) -> None:
        self.overrides.clear()
        self._dial_counts.clear()

    def rng_for(self, number: str, attempt: int) -> random.Random:
        return random.Random(f"{self.seed}:{number}:{attempt}")

    def set_override(self, number: str, spec: dict[str, Any] | Behaviour, population: Population) -> Behaviour:
        if isinstance(spec, Behaviour):
            behaviour = spec
        else:
            behaviour = behaviour_from_spec(spec, self.rng_for(number, -1), population)
        self.overrides[number] = behaviour
        return behaviour

    def draw(self, number: str, population: Population) -> tuple[Behaviour, str]:
        """The behaviour for the next call to `number` and where it came from (override / magic / population)."""
        attempt = self._dial_counts.get(number, 0)
        self._dial_counts[number] = attempt + 1
        if number in self.overrides:
            return self.overrides[number], "override"
        if number in MAGIC_NUMBERS:
            return MAGIC_NUMBERS[number], "magic"
        return population.draw(self.rng_for(number, attempt)), "population"
