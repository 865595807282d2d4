"""Chart data for the reports page, built from the same report dict the tables show (so a chart never says
something its table does not). static/js/reports.js hands each one to Chart.js as it is."""

from __future__ import annotations


def _pct(value: float | None) -> float | None:
    return round(value * 100, 2) if value is not None else None


def report_charts(report: dict) -> dict:
    days = report["days"]
    hours = report["hours"]
    best = report["best_hours"]
    cap = _pct(report["campaign"].max_abandon_rate)
    return {
        "trend": {
            "type": "bar", "percent_axis": False,
            "labels": [d["day"].strftime("%a %d %b") for d in days],
            "datasets": [
                {"label": "Dials", "data": [d["m"].dials for d in days]},
                {"label": "People reached", "data": [d["m"].reached for d in days]},
                {"label": "Conversations", "data": [d["m"].conversations for d in days]},
            ],
        },
        "abandonment": {
            "type": "line", "percent_axis": True,
            "labels": [a["day"].strftime("%a %d %b") for a in report["abandonment"]],
            "datasets": [
                {"label": "Abandoned that day (%)", "data": [_pct(a["rate"]) for a in report["abandonment"]]},
                {"label": "Rolling 30 days (%)", "data": [_pct(a["rolling_rate"]) for a in report["abandonment"]]},
                {"label": "Cap (%)", "data": [cap for _ in report["abandonment"]], "dashed": True},
            ],
        },
        "funnel": {
            "type": "bar", "horizontal": True, "percent_axis": False,
            "labels": [step["step"] for step in report["funnel"]],
            "datasets": [{"label": "Calls", "data": [step["count"] for step in report["funnel"]]}],
        },
        "hours": {
            "type": "bar", "percent_axis": False,
            "labels": [f"{h['hour']:02d}:00" for h in hours],
            "datasets": [
                {"label": "Dials", "data": [h["m"].dials for h in hours]},
                {"label": "Conversations", "data": [h["m"].conversations for h in hours]},
            ],
        },
        "best_hours": {
            "type": "bar", "percent_axis": True,
            "labels": [f"{h['hour']:02d}:00" for h in best],
            "datasets": [{"label": "Connect rate at the contact's local hour (%)",
                          "data": [_pct(h["m"].connect_rate) for h in best]}],
        },
        "dispositions": {
            "type": "bar", "horizontal": True, "percent_axis": False,
            "labels": [d["label"] for d in report["dispositions"]],
            "datasets": [{"label": "Dispositions", "data": [d["count"] for d in report["dispositions"]]}],
        },
        "amd": {
            "type": "bar", "horizontal": True, "percent_axis": False,
            "labels": [a["label"] for a in report["amd"]],
            "datasets": [{"label": "Answered calls", "data": [a["calls"] for a in report["amd"]]}],
        },
    }
