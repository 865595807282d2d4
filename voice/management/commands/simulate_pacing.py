"""Run the pacer's real decision code against the population model in simulated time (no database, no network)."""

import json

from django.core.management.base import BaseCommand, CommandError

from voice.pacing import MODES
from voice.pacing.population import REFERENCE_B2B
from voice.pacing.simulation import SimulationResult, default_hours, run_many, run_table, summary


class Command(BaseCommand):
    help = (
        "Simulate a campaign's pacing: conversations per agent-hour, abandonment, utilisation, agent wait. "
        "The default population is the reference B2B list; --table prints the reference table."
    )
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("--agents", type=int, default=5)
        parser.add_argument("--mode", choices=[m for m in MODES if m != "preview"], default="predictive")
        parser.add_argument("--lines", type=int, default=3, help="lines per agent (parallel mode)")
        parser.add_argument("--hours", type=float, default=None, help="default: 200 agent-hours in all")
        parser.add_argument("--cap", type=float, default=0.03, help="abandonment cap (abandoned / human-answered)")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--seeds", type=int, default=1,
            help="run seeds --seed .. --seed + N - 1 and report their mean (one seed wobbles by a few tenths)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--table", action="store_true", help="the reference table: predictive, parallel, progressive"
        )
        parser.add_argument(
            "--jobs", type=int, default=None, help="processes for --table and --seeds (default: all cores)"
        )
        population = parser.add_argument_group("population (default: the reference B2B list)")
        population.add_argument("--human", type=float, default=REFERENCE_B2B.human, help="share of humans")
        population.add_argument("--machine", type=float, default=REFERENCE_B2B.machine)
        population.add_argument("--no-answer", type=float, default=REFERENCE_B2B.no_answer)
        population.add_argument("--busy-failed", type=float, default=REFERENCE_B2B.busy + REFERENCE_B2B.failed)
        population.add_argument("--talk-mean", type=float, default=REFERENCE_B2B.talk_mean_s, help="seconds")
        population.add_argument("--talk-cv", type=float, default=REFERENCE_B2B.talk_cv)
        population.add_argument("--wrap-min", type=float, default=REFERENCE_B2B.wrap_s[0], help="seconds")
        population.add_argument("--wrap-max", type=float, default=REFERENCE_B2B.wrap_s[1], help="seconds")
        population.add_argument("--amd-human", type=float, default=REFERENCE_B2B.amd_human_s[0], help="mean seconds")
        rules = parser.add_argument_group("rules")
        rules.add_argument("--min-ring", type=float, default=15.0, help="seconds before a line may be released")
        rules.add_argument("--ring-timeout", type=float, default=25.0)
        rules.add_argument("--max-hold", type=float, default=2.0, help="seconds a human may wait for an agent")
        parser.add_argument(
            "--tick", type=float, default=1.0,
            help="simulated seconds between decisions besides events (the worker's own is 0.25: slower, a hair better)",
        )

    def handle(self, *args, **options):
        if options["agents"] < 1:
            raise CommandError("--agents must be at least 1")
        if not 0.05 <= options["tick"] <= 5.0:
            raise CommandError("--tick must be between 0.05 and 5 seconds")
        if options["seeds"] < 1:
            raise CommandError("--seeds must be at least 1")
        if not 0.0 < options["cap"] < 1.0:
            raise CommandError("--cap must be between 0 and 1")
        if options["wrap_min"] > options["wrap_max"]:
            raise CommandError("--wrap-min must not exceed --wrap-max")
        busy_failed = options["busy_failed"]
        population = REFERENCE_B2B.with_overrides(
            human=options["human"],
            machine=options["machine"],
            no_answer=options["no_answer"],
            busy=busy_failed / 2.0,
            failed=busy_failed / 2.0,
            talk_mean_s=options["talk_mean"],
            talk_cv=options["talk_cv"],
            wrap_s=(options["wrap_min"], options["wrap_max"]),
            amd_human_s=(options["amd_human"], REFERENCE_B2B.amd_human_s[1]),
        )
        rules = {
            "cap": options["cap"],
            "min_ring_s": options["min_ring"],
            "ring_timeout_s": options["ring_timeout"],
            "max_hold_s": options["max_hold"],
            "tick_s": options["tick"],
            "population": population,
        }
        seeds = tuple(range(options["seed"], options["seed"] + options["seeds"]))
        if options["table"]:
            points = run_table(seeds=seeds, jobs=options["jobs"], **rules)
            if options["json"]:
                self.stdout.write(json.dumps({"rows": [_json(runs) for runs in points]}))
                return
            self.stdout.write(_header(len(seeds)))
            for runs in points:
                self.stdout.write(_line(runs[0]) if len(runs) == 1 else _mean_line(runs))
            return
        hours = options["hours"] if options["hours"] is not None else default_hours(options["agents"])
        point = {"agents": options["agents"], "mode": options["mode"], "lines": options["lines"], "hours": hours}
        runs = run_many([{**point, "seed": seed, **rules} for seed in seeds], jobs=options["jobs"])
        if options["json"]:
            self.stdout.write(json.dumps(_json(runs)))
        elif len(runs) == 1:
            self.stdout.write(_human(runs[0]))
        else:
            self.stdout.write(_header(1))
            for result in runs:
                self.stdout.write(_line(result))
            self.stdout.write(_mean_line(runs))


def _json(runs: list[SimulationResult]) -> dict:
    """One run as it is; several seeds as their summary, each run under "runs"."""
    if len(runs) == 1:
        return runs[0].as_dict()
    return {**summary(runs), "runs": [r.as_dict() for r in runs]}


def _mean_line(runs: list[SimulationResult]) -> str:
    s = summary(runs)
    return (
        f"{_row(s)}   mean of seeds {s['seeds'][0]}-{s['seeds'][-1]}: conv/agent-h sd "
        f"{s['conversations_per_agent_hour_sd']:.2f}, {s['conversations_per_agent_hour_min']:.2f}-"
        f"{s['conversations_per_agent_hour_max']:.2f}; worst abandonment {s['abandon_rate_max'] * 100:.2f}%"
    )


def _header(seeds: int) -> str:
    return (f"(each row: the mean of {seeds} seeds)\n" if seeds > 1 else "") + (
        f"{'mode':<12}{'agents':>7}{'lines':>6}{'agent-h':>9}{'conv/agent-h':>14}{'abandon':>9}"
        f"{'util':>7}{'wait s':>8}{'dials/agent-h':>15}{'talk min/h':>12}{'wall s':>8}"
    )


def _line(r: SimulationResult) -> str:
    return _row(r.as_dict())


def _row(r: dict) -> str:
    """One table row from a run's figures or a summary of several seeds."""
    lines = str(r["lines"]) if r["mode"] == "parallel" else "-"
    return (
        f"{r['mode']:<12}{r['agents']:>7}{lines:>6}{r['agent_hours']:>9.0f}{r['conversations_per_agent_hour']:>14.2f}"
        f"{r['abandon_rate'] * 100:>8.2f}%{r['utilisation']:>7.3f}{r['mean_agent_wait_s']:>8.0f}"
        f"{r['dials_per_agent_hour']:>15.0f}{r['talk_minutes_per_hour']:>12.1f}{r['wall_s']:>8.1f}"
    )


def _human(r: SimulationResult) -> str:
    lines = f", {r.lines} lines per agent" if r.mode == "parallel" else ""
    return "\n".join(
        [
            f"{r.mode}{lines}: {r.agents} agent(s) x {r.hours:g} h = {r.agent_hours:g} agent-hours, seed {r.seed}",
            f"  conversations per agent-hour  {r.conversations_per_agent_hour:.2f}  (upper bound {r.upper_bound:.1f})",
            f"  abandonment                   {r.abandon_rate * 100:.2f} %  ({r.abandoned} of {r.humans} humans;"
            f" cap {r.cap * 100:g} %)",
            f"  agent utilisation             {r.utilisation * 100:.1f} %  (talk + wrap)",
            f"  mean agent wait               {r.mean_agent_wait_s:.0f} s between conversations",
            f"  dials per agent-hour          {r.dials_per_agent_hour:.0f}  ({r.released} released after min ring)",
            f"  talk minutes per hour         {r.talk_minutes_per_hour:.1f}",
            f"  simulated in                  {r.wall_s:.1f} s",
        ]
    )
