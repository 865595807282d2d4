"""Cost of the pacer's decisions for one worker tick: 100 predictive campaigns x 10 agents.

The campaign states are real ones, recorded from a simulated 10-agent predictive campaign, so the mix of
ready / talking / wrapping agents and young / old lines is what the worker meets. Budget: the whole tick
(all decisions, not the database reads) <= 50 ms.

    python benchmarks/pacing_tick.py [--campaigns 100] [--agents 10] [--ticks 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voice.pacing import decide, simulation


def recorded_states(agents: int, hours: float, seed: int) -> list[tuple]:
    """Every (settings, stats, agents, lines) the pacer was asked about in a simulated campaign."""
    seen: list[tuple] = []

    def recording(*args):
        seen.append(args)
        return decide(*args)

    simulation.decide = recording
    try:
        simulation.run(agents=agents, mode="predictive", hours=hours, seed=seed, warmup_s=300)
    finally:
        simulation.decide = decide
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()

    states = recorded_states(args.agents, hours=1.0, seed=1)
    rng = random.Random(1)
    costs_ms = []
    for _ in range(args.ticks):
        tick = [rng.choice(states) for _ in range(args.campaigns)]
        started = time.process_time()
        for state in tick:
            decide(*state)
        costs_ms.append((time.process_time() - started) * 1000.0)
    costs_ms.sort()
    print(
        f"{args.campaigns} campaigns x {args.agents} agents, {args.ticks} ticks: "
        f"median {statistics.median(costs_ms):.1f} ms, p95 {costs_ms[int(0.95 * len(costs_ms))]:.1f} ms, "
        f"max {costs_ms[-1]:.1f} ms per tick (budget 50 ms)"
    )


if __name__ == "__main__":
    main()
