"""Run the pacer's real decision code against the population model in simulated time (no database, no network)."""

import json

from django.core.management.base import BaseCommand, CommandError

from voice.pacing import MODES
from voice.sandbox.population import REFERENCE_B2B
from voice.simulation import SimulationResult, default_hours, run, run_table


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
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--table", action="store_true", help="the reference table: predictive, parallel, progressive"
        )
        parser.add_argument("--jobs", type=int, default=None, help="--table: processes (default: all cores)")
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

    def handle(self, *args, **options):
        if options["agents"] < 1:
            raise CommandError("--agents must be at least 1")
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
            "population": population,
        }
        if options["table"]:
            results = run_table(seed=options["seed"], jobs=options["jobs"], **rules)
            if options["json"]:
                self.stdout.write(json.dumps({"rows": [r.as_dict() for r in results]}))
            else:
                self.stdout.write(_header())
                for result in results:
                    self.stdout.write(_line(result))
            return
        hours = options["hours"] if options["hours"] is not None else default_hours(options["agents"])
        result = run(
            agents=options["agents"],
            mode=options["mode"],
            lines=options["lines"],
            hours=hours,
            seed=options["seed"],
            **rules,
        )
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))
            return
        self.stdout.write(_human(result))


def _header() -> str:
    return (
        f"{'mode':<12}{'agents':>7}{'lines':>6}{'agent-h':>9}{'conv/agent-h':>14}{'abandon':>9}"
        f"{'util':>7}{'wait s':>8}{'dials/agent-h':>15}{'talk min/h':>12}{'wall s':>8}"
    )


def _line(r: SimulationResult) -> str:
    lines = str(r.lines) if r.mode == "parallel" else "-"
    return (
        f"{r.mode:<12}{r.agents:>7}{lines:>6}{r.agent_hours:>9.0f}{r.conversations_per_agent_hour:>14.2f}"
        f"{r.abandon_rate * 100:>8.2f}%{r.utilisation:>7.3f}{r.mean_agent_wait_s:>8.0f}"
        f"{r.dials_per_agent_hour:>15.0f}{r.talk_minutes_per_hour:>12.1f}{r.wall_s:>8.1f}"
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
