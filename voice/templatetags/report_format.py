"""Number formats for the reports: a dash for "no data", never a misleading 0 %."""

from __future__ import annotations

from django import template

register = template.Library()
DASH = "\u2013"  # an en dash


@register.filter
def pct(value, digits: int = 1) -> str:
    if value is None:
        return DASH
    return f"{value * 100:.{int(digits)}f} %"


@register.filter
def num(value, digits: int = 0) -> str:
    if value is None:
        return DASH
    return f"{value:,.{int(digits)}f}"


@register.filter
def duration(seconds) -> str:
    """1 h 05 min, 12 min 30 s, 45 s."""
    if seconds is None:
        return DASH
    seconds = round(float(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


@register.filter
def get(mapping, key):
    return mapping.get(key, 0) if mapping else 0
