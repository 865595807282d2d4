"""The date range a report covers: whole local days in the manager's time zone."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from dataclasses import dataclass

from django.utils import timezone

DEFAULT_DAYS = 7
MAX_DAYS = 366


class BadPeriod(ValueError):
    """A date range or time zone the report cannot use; the message says which field and why."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_from_name(name: str) -> zoneinfo.ZoneInfo:
    # Only names of the IANA database: PostgreSQL is handed the same name in `AT TIME ZONE`.
    if name not in _zone_names() and name != "UTC":
        raise BadPeriod("tz", f"unknown time zone {name[:64]!r}")
    return zoneinfo.ZoneInfo(name)


@dataclass(frozen=True)
class Period:
    first_day: dt.date
    last_day: dt.date  # inclusive
    zone: zoneinfo.ZoneInfo

    @property
    def tz_name(self) -> str:
        return self.zone.key

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.first_day, dt.time.min, tzinfo=self.zone)

    @property
    def end(self) -> dt.datetime:
        """Exclusive: midnight after the last day."""
        return dt.datetime.combine(self.last_day + dt.timedelta(days=1), dt.time.min, tzinfo=self.zone)

    @property
    def days(self) -> list[dt.date]:
        count = (self.last_day - self.first_day).days + 1
        return [self.first_day + dt.timedelta(days=i) for i in range(count)]

    def as_query(self) -> dict[str, str]:
        return {"start": self.first_day.isoformat(), "end": self.last_day.isoformat(), "tz": self.tz_name}


def _date(params, field: str) -> dt.date | None:
    raw = (params.get(field) or "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise BadPeriod(field, "use a date like 2026-03-31") from None


def period_from_params(params, *, default_tz: str, now: dt.datetime | None = None) -> Period:
    """`start`, `end` (ISO dates, inclusive) and `tz` from a query string; default the last 7 days, today
    included, in `default_tz`. BadPeriod names the field when one is wrong."""
    zone = zone_from_name((params.get("tz") or "").strip() or default_tz)
    today = timezone.localtime(now or timezone.now(), zone).date()
    last_day = _date(params, "end") or today
    first_day = _date(params, "start") or last_day - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first_day > last_day:
        raise BadPeriod("start", "the start is after the end")
    if (last_day - first_day).days + 1 > MAX_DAYS:
        raise BadPeriod("start", f"a report covers at most {MAX_DAYS} days")
    if first_day.year < 2000 or last_day.year > 2100:
        raise BadPeriod("start", "choose dates between 2000 and 2100")
    return Period(first_day=first_day, last_day=last_day, zone=zone)
