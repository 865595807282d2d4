"""Reads for the manager reports: a campaign's calls over a period, aggregated in PostgreSQL.

Most periods are read from the hourly rollups (voice.reports.rollups), brought up to date first. Periods in a
zone a half hour off UTC are read from the calls: one scan answers every breakdown at once (GROUPING SETS: the
whole campaign, per day, per hour of the day, per hour at the contact, per agent, per AMD verdict, per
disposition), plus agent time from the state-change log and AMD latency percentiles. The compliance findings
are read from the calls, limited to the hours the rollups flagged.

Definitions, used the same way on every page and export:
- dials: calls placed (rows), by the time they were placed (`created_at`), in the manager's time zone;
- reached (people): a person answered, `voice.models.human_answered_q` (the abandonment denominator);
- connect rate: reached / dials; conversations: dispositions whose code counts as a conversation;
- talk time: connected to the end of the call; agent time (talk / wrap / wait / idle) from the agents' state
  log: on a call / wrap-up / ready / paused;
- an agent's calls are the calls bridged to them, else dialed for them;
- lines per agent: line-seconds (placed to ended) over the agents' waiting (ready) seconds: how many lines
  were ringing for each waiting agent on average.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import zoneinfo
from dataclasses import dataclass, field

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from campaigns.models import AgentSession, AgentStateChange, Campaign, Contact, DispositionCode, DoNotCall
from voice.gate import calling_days
from voice.models import Call, Disposition, WebhookEvent
from voice.reports import conditions, rollups
from voice.reports.period import Period
from voice.states import Outcome

ROLLING_DAYS = 30
# voice.models.human_answered_q and machine_q, compiled: their values are in conditions.PARAMS, which _rows binds.
HUMAN_SQL = conditions.HUMAN.sql
MACHINE_SQL = conditions.MACHINE.sql
AGENT_STATES = {"on_call": "talk_s", "wrap_up": "wrap_s", "ready": "wait_s", "paused": "idle_s"}
CAP_FIELDS = ("max_abandon_rate", "abandon_cap_opt_out", "abandon_cap_opt_out_by", "abandon_cap_opt_out_at")

CALL = Call._meta.db_table
CONTACT = Contact._meta.db_table
DISPOSITION = Disposition._meta.db_table
CODE = DispositionCode._meta.db_table
SESSION = AgentSession._meta.db_table
STATE_CHANGE = AgentStateChange._meta.db_table


@functools.cache
def _zone_names() -> list[str]:
    return sorted(zoneinfo.available_timezones() | {"UTC"})


def _rows(sql: str, params: dict) -> list[dict]:
    with connection.cursor() as cursor:
        # Every report query may use the rules' conditions; a query that does not ignores their values.
        cursor.execute(sql, {**conditions.PARAMS, **params})
        names = [col.name for col in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


# -- the measures -----------------------------------------------------------------------------------------


@dataclass
class Measures:
    dials: int = 0
    answered: int = 0
    reached: int = 0
    machines: int = 0
    talked: int = 0
    abandoned: int = 0
    safe_harbor: int = 0
    conversations: int = 0
    positive: int = 0
    corrected: int = 0
    talk_s: float = 0.0
    line_s: float = 0.0
    amd_n: int = 0
    amd_ms_sum: float = 0.0
    # Agent time, where the row has it (campaign, day, agent).
    agent: dict[str, float] = field(default_factory=dict)

    @property
    def connect_rate(self) -> float | None:
        return _share(self.reached, self.dials)

    @property
    def abandon_rate(self) -> float | None:
        return _share(self.abandoned, self.reached)

    @property
    def amd_mean_ms(self) -> float | None:
        return self.amd_ms_sum / self.amd_n if self.amd_n else None

    @property
    def working_s(self) -> float:
        """Signed in and not paused: talking, wrapping up or waiting."""
        return sum(self.agent.get(k, 0.0) for k in ("talk_s", "wrap_s", "wait_s"))

    @property
    def conversations_per_agent_hour(self) -> float | None:
        return _share(self.conversations, self.working_s / 3600) if self.working_s else None

    @property
    def lines_per_agent(self) -> float | None:
        wait_s = self.agent.get("wait_s", 0.0)
        return self.line_s / wait_s if wait_s else None


MEASURES_SQL = f"""
    count(*) AS dials,
    count(*) FILTER (WHERE answered_at IS NOT NULL) AS answered,
    count(*) FILTER (WHERE human) AS reached,
    count(*) FILTER (WHERE machine) AS machines,
    count(*) FILTER (WHERE outcome = '{Outcome.TALKED}') AS talked,
    count(*) FILTER (WHERE outcome = '{Outcome.ABANDONED}') AS abandoned,
    count(*) FILTER (WHERE safe_harbor) AS safe_harbor,
    count(*) FILTER (WHERE conversation) AS conversations,
    count(*) FILTER (WHERE positive) AS positive,
    count(*) FILTER (WHERE amd_corrected) AS corrected,
    coalesce(sum(talk_s), 0) AS talk_s,
    coalesce(sum(line_s), 0) AS line_s,
    count(amd_duration_ms) AS amd_n,
    coalesce(sum(amd_duration_ms), 0)::float8 AS amd_ms_sum
"""
MEASURE_NAMES = ("dials", "answered", "reached", "machines", "talked", "abandoned", "safe_harbor", "conversations",
                 "positive",
                 "corrected", "talk_s", "line_s", "amd_n", "amd_ms_sum")
DIMENSIONS = ("day", "hour", "local_hour", "session_id", "answered_by", "code_id")

BREAKDOWN_SQL = f"""
WITH zones(name) AS (SELECT unnest(%(zones)s::text[])),
f AS (
    SELECT
        (c.created_at AT TIME ZONE %(tz)s)::date AS day,
        extract(hour FROM c.created_at AT TIME ZONE %(tz)s)::int AS hour,
        extract(hour FROM c.created_at AT TIME ZONE z.name)::int AS local_hour,
        coalesce(c.bridged_to_id, c.dialed_for_id) AS session_id,
        c.answered_by, c.outcome, c.answered_at, c.amd_duration_ms, c.amd_corrected,
        {HUMAN_SQL} AS human,
        {MACHINE_SQL} AS machine,
        {rollups.SAFE_HARBOR_HEARD},
        extract(epoch FROM c.ended_at - c.connected_at)::float8 AS talk_s,
        extract(epoch FROM c.ended_at - c.created_at)::float8 AS line_s,
        d.code_id,
        coalesce(dc.is_conversation, false) AS conversation,
        coalesce(dc.is_positive, false) AS positive
    FROM {CALL} c
    JOIN {CONTACT} ct ON ct.id = c.contact_id
    LEFT JOIN zones z ON z.name = ct.time_zone
    LEFT JOIN {DISPOSITION} d ON d.call_id = c.id
    LEFT JOIN {CODE} dc ON dc.id = d.code_id
    WHERE c.campaign_id = %(campaign)s AND c.created_at >= %(start)s AND c.created_at < %(end)s
)
SELECT {", ".join(f"grouping({d}) AS g_{d}" for d in DIMENSIONS)}, {", ".join(DIMENSIONS)}, {MEASURES_SQL}
FROM f
GROUP BY GROUPING SETS ((), {", ".join(f"({d})" for d in DIMENSIONS)})
"""


def _measures(row: dict) -> Measures:
    return Measures(**{name: row[name] for name in MEASURE_NAMES})


def call_breakdowns(*, campaign: Campaign, period: Period) -> dict:
    """{"total": Measures, "day": {date: Measures}, "hour": {0..23: ...}, "local_hour": {hour or None: ...},
    "session_id": {id or None: ...}, "answered_by": {value: ...}, "code_id": {id or None: ...}}."""
    rows = _rows(BREAKDOWN_SQL, {"zones": _zone_names(), "tz": period.tz_name, "campaign": campaign.pk,
                                 "start": period.start, "end": period.end})
    result: dict = {"total": Measures(), **{d: {} for d in DIMENSIONS}}
    for row in rows:
        grouped = [d for d in DIMENSIONS if row[f"g_{d}"] == 0]
        if not grouped:
            result["total"] = _measures(row)
        else:
            result[grouped[0]][row[grouped[0]]] = _measures(row)
    return result


# -- agent time -----------------------------------------------------------------------------------------

AGENT_TIME_SQL = f"""
WITH sessions AS (SELECT id FROM {SESSION} WHERE campaign_id = %(campaign)s),
changes AS (
    SELECT ch.session_id, ch.state, ch.at FROM {STATE_CHANGE} ch
    WHERE ch.session_id IN (SELECT id FROM sessions) AND ch.at >= %(start)s AND ch.at < %(end)s
    UNION ALL
    -- The state each agent was already in when the period began.
    SELECT s.id, before.state, before.at FROM sessions s
    CROSS JOIN LATERAL (
        SELECT state, at FROM {STATE_CHANGE} WHERE session_id = s.id AND at < %(start)s ORDER BY at DESC LIMIT 1
    ) before
),
spans AS (
    SELECT session_id, state, greatest(at, %(start)s) AS since,
           least(lead(at, 1, %(until)s) OVER (PARTITION BY session_id ORDER BY at), %(until)s) AS until
    FROM changes
)
SELECT session_id, (since AT TIME ZONE %(tz)s)::date AS day, state,
       sum(extract(epoch FROM until - since))::float8 AS seconds
FROM spans WHERE until > since AND state <> 'offline'
GROUP BY session_id, day, state
"""


def agent_time(*, campaign: Campaign, period: Period, now: dt.datetime | None = None) -> list[dict]:
    """Seconds per (session, local day the span began, state), spans clipped to the period and to now."""
    until = min(period.end, now or timezone.now())
    if until <= period.start:
        return []
    return _rows(AGENT_TIME_SQL, {"campaign": campaign.pk, "start": period.start, "end": period.end,
                                  "until": until, "tz": period.tz_name})


# -- abandonment --------------------------------------------------------------------------------------------

ABANDON_SQL = f"""
SELECT (c.created_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS reached,
       count(*) FILTER (WHERE c.outcome = '{Outcome.ABANDONED}') AS abandoned
FROM {CALL} c
WHERE c.campaign_id = %(campaign)s AND c.created_at >= %(since)s AND c.created_at < %(end)s AND {HUMAN_SQL}
GROUP BY day
"""


def abandonment_by_day(*, campaign: Campaign, period: Period, now: dt.datetime | None = None,
                       refresh: bool = True) -> list[dict]:
    """Per day of the period: abandoned / reached that day, and over the 30 days ending that day, against the
    campaign's cap as it is now."""
    since = period.start - dt.timedelta(days=ROLLING_DAYS - 1)
    params = {"tz": period.tz_name, "campaign": campaign.pk, "since": since, "end": period.end}
    if rollups.whole_hours(period):
        if refresh:
            rollups.rollup_refresh(campaign=campaign, now=now)
        daily = {row["day"]: row for row in _rows(rollups.DAILY_ABANDON_SQL, params)}
    else:
        daily = {row["day"]: row for row in _rows(ABANDON_SQL, params)}
    cap = campaign.max_abandon_rate
    result = []
    for day in period.days:
        window = [daily.get(day - dt.timedelta(days=i)) for i in range(ROLLING_DAYS)]
        rolled_abandoned = sum(r["abandoned"] for r in window if r)
        rolled_reached = sum(r["reached"] for r in window if r)
        today = daily.get(day) or {"abandoned": 0, "reached": 0}
        rate = _share(today["abandoned"], today["reached"])
        rolling = _share(rolled_abandoned, rolled_reached)
        result.append({
            "day": day, "abandoned": today["abandoned"], "reached": today["reached"], "rate": rate,
            "rolling_abandoned": rolled_abandoned, "rolling_reached": rolled_reached, "rolling_rate": rolling,
            "cap": cap, "over_cap": rolling is not None and rolling > cap,
        })
    return result


# -- answering machine detection -------------------------------------------------------------------------------

AMD_LATENCY_SQL = f"""
SELECT c.answered_by, percentile_cont(0.5) WITHIN GROUP (ORDER BY c.amd_duration_ms) AS p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY c.amd_duration_ms) AS p90
FROM {CALL} c
WHERE c.campaign_id = %(campaign)s AND c.created_at >= %(start)s AND c.created_at < %(end)s
  AND c.amd_duration_ms IS NOT NULL
GROUP BY c.answered_by
"""

AMD_ORDER = ("human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax",
             "unknown", "")
AMD_LABELS = {"human": "Human", "machine_start": "Machine (greeting start)",
              "machine_end_beep": "Machine (after the beep)", "machine_end_silence": "Machine (after silence)",
              "machine_end_other": "Machine (other end)", "fax": "Fax", "unknown": "Unknown",
              "": "No verdict (timed out)"}


def amd_latency(*, campaign: Campaign, period: Period) -> dict[str, dict]:
    """Median and 90th percentile of the detection time per verdict, from the calls themselves."""
    return {row["answered_by"]: row for row in _rows(AMD_LATENCY_SQL, {
        "campaign": campaign.pk, "start": period.start, "end": period.end})}


def amd_breakdown(*, by_verdict: dict[str, Measures], latency: dict[str, dict]) -> list[dict]:
    """Answered calls per AMD verdict, with detection latency and the agents' "that was a machine"
    corrections of `human` verdicts (the false-human rate)."""
    answered = sum(m.answered for m in by_verdict.values())
    order = {v: i for i, v in enumerate(AMD_ORDER)}
    result = []
    for verdict in sorted(by_verdict, key=lambda v: (order.get(v, len(order)), v)):
        measures = by_verdict[verdict]
        if not measures.answered:
            continue
        result.append({
            "verdict": verdict, "label": AMD_LABELS.get(verdict, verdict), "calls": measures.answered,
            "share": _share(measures.answered, answered), "mean_ms": measures.amd_mean_ms,
            "p50_ms": latency.get(verdict, {}).get("p50"), "p90_ms": latency.get(verdict, {}).get("p90"),
            "corrected": measures.corrected if verdict == "human" else None,
            "false_human_rate": _share(measures.corrected, measures.answered) if verdict == "human" else None,
        })
    return result


# -- from the rollups or from the calls ----------------------------------------------------------------------


def _figures(*, campaign: Campaign, period: Period, now: dt.datetime | None = None, refresh: bool = True):
    """(breakdowns as call_breakdowns returns them, agent time rows, AMD latency per verdict): from the hourly
    rollups, brought up to date first (unless the caller just did), when the period is made of whole UTC
    hours; else from the calls."""
    if not rollups.whole_hours(period):
        return (call_breakdowns(campaign=campaign, period=period),
                agent_time(campaign=campaign, period=period, now=now), amd_latency(campaign=campaign, period=period))
    if refresh:
        rollups.rollup_refresh(campaign=campaign, now=now)
    b: dict = {"total": Measures(), **{d: {} for d in DIMENSIONS}}
    agent_rows: list[dict] = []
    histogram: dict[str, list[tuple[int, int]]] = {}

    def key_id(key: str) -> int | None:
        return int(key) if key else None

    for row in rollups.rollup_rows(campaign=campaign, start=period.start, end=period.end, tz=period.tz_name):
        dim, key = row["dim"], row["key"]
        if row["g_day"] == 0:
            if dim == "total":
                b["day"][row["day"]] = _measures(row)
            elif dim == "agent_state":
                agent_rows.append({"session_id": None, "day": row["day"], "state": key, "seconds": row["seconds"]})
        elif row["g_hod"] == 0:
            if dim == "total":
                b["hour"][row["hod"]] = _measures(row)
        elif dim == "total":
            b["total"] = _measures(row)
        elif dim == "local_hour":
            b["local_hour"][key_id(key)] = _measures(row)
        elif dim == "session":
            b["session_id"][key_id(key)] = _measures(row)
        elif dim == "code":
            b["code_id"][key_id(key)] = _measures(row)
        elif dim == "answered_by":
            b["answered_by"][key] = _measures(row)
        elif dim == "agent_time":
            session, state = key.split("|")
            agent_rows.append({"session_id": int(session), "day": None, "state": state, "seconds": row["seconds"]})
        elif dim == "amd_ms":
            verdict, bucket = key.rsplit("|", 1)
            histogram.setdefault(verdict, []).append((int(bucket), row["dials"]))
    latency = {verdict: {"p50": _histogram_percentile(buckets, 0.5), "p90": _histogram_percentile(buckets, 0.9)}
               for verdict, buckets in histogram.items()}
    return b, agent_rows, latency


def _histogram_percentile(buckets: list[tuple[int, int]], share: float) -> float | None:
    """percentile_cont over the bucket midpoints, each counted as often as the bucket holds calls."""
    buckets = sorted(buckets)
    total = sum(count for _, count in buckets)
    if not total:
        return None
    position = share * (total - 1)
    below, above = int(position), min(int(position) + 1, total - 1)
    values = {}
    seen = 0
    for bucket, count in buckets:
        for index in (below, above):
            if seen <= index < seen + count:
                values[index] = bucket + rollups.AMD_BUCKET_MS / 2
        seen += count
    return values[below] + (values[above] - values[below]) * (position - below)


# -- the report -------------------------------------------------------------------------------------------


def _agent_names(campaign: Campaign) -> dict[int, str]:
    return {s.pk: (s.agent.get_full_name() or s.agent.get_username())
            for s in AgentSession.objects.filter(campaign=campaign).select_related("agent")}


def campaign_report(*, campaign: Campaign, period: Period, now: dt.datetime | None = None) -> dict:
    """Everything the reports page shows, as plain data (the CSV exports read the same)."""
    fresh = _refresh(campaign, period, now)
    b, agent_rows, latency = _figures(campaign=campaign, period=period, now=now, refresh=not fresh)
    total: Measures = b["total"]
    names = _agent_names(campaign)

    for row in agent_rows:
        # A row counts for its agent, its day, or both (the rollups keep the two apart).
        key = AGENT_STATES[row["state"]]
        seconds = float(row["seconds"])
        targets = []
        if row.get("session_id") is not None:
            targets.append(b["session_id"].setdefault(row["session_id"], Measures()))
        if row.get("day") is not None:
            targets.append(b["day"].setdefault(row["day"], Measures()))
        if row.get("session_id") is not None:
            targets.append(total)
        for measures in targets:
            measures.agent[key] = measures.agent.get(key, 0.0) + seconds

    days = [{"day": day, "m": b["day"].get(day, Measures())} for day in period.days]
    hours = [{"hour": hour, "m": b["hour"].get(hour, Measures())} for hour in range(24)]
    best_hours = [{"hour": hour, "m": b["local_hour"].get(hour, Measures())} for hour in range(24)]
    unknown_zone = b["local_hour"].get(None)
    agents = sorted(
        ({"session_id": sid, "name": names.get(sid, f"session {sid}"), "m": m}
         for sid, m in b["session_id"].items() if sid is not None),
        key=lambda a: (-a["m"].conversations, a["name"]))
    unassigned = b["session_id"].get(None)

    codes = {c.pk: c for c in DispositionCode.objects.filter(campaign=campaign)}
    disposed = sum(m.dials for cid, m in b["code_id"].items() if cid is not None)
    dispositions = sorted(
        ({"code": codes[cid].code if cid in codes else str(cid), "label": codes[cid].label if cid in codes else "?",
          "conversation": codes[cid].is_conversation if cid in codes else False,
          "positive": codes[cid].is_positive if cid in codes else False,
          "count": m.dials, "share": _share(m.dials, disposed)}
         for cid, m in b["code_id"].items() if cid is not None),
        key=lambda d: (-d["count"], d["label"]))

    funnel = [
        {"step": "Dialed", "count": total.dials},
        {"step": "Answered", "count": total.answered},
        {"step": "Person", "count": total.reached},
        {"step": "Talked", "count": total.talked},
        {"step": "Positive", "count": total.positive},
    ]
    for step in funnel:
        step["share"] = _share(step["count"], total.dials)

    return {
        "campaign": campaign, "period": period, "total": total, "days": days, "hours": hours,
        "best_hours": best_hours, "unknown_zone": unknown_zone, "agents": agents, "unassigned": unassigned,
        "dispositions": dispositions, "disposed": disposed, "funnel": funnel,
        "amd": amd_breakdown(by_verdict=b["answered_by"], latency=latency),
        "abandonment": abandonment_by_day(campaign=campaign, period=period, now=now, refresh=not fresh),
        "safe_harbor_played": total.safe_harbor,
    }


# -- compliance ------------------------------------------------------------------------------------------------

SAFE_HARBOR_SQL = f"""
SELECT c.id, c.created_at, c.answered_at, c.amd_at, c.ended_at, ct.name AS contact_name, ct.phone,
       coalesce(
           (SELECT min(w.received_at) FROM {WebhookEvent._meta.db_table} w
             WHERE w.call_sid = c.sid AND c.sid IS NOT NULL AND w.path LIKE '%%/safe-harbor%%'),
           (SELECT min(e.created_at) FROM voice_callevent e
             WHERE e.call_id = c.id AND e.data -> 'effects' @> '["redirect_safe_harbor"]'::jsonb)
       ) AS safe_harbor_at
FROM {CALL} c JOIN {CONTACT} ct ON ct.id = c.contact_id
WHERE c.campaign_id = %(campaign)s AND c.created_at >= %(start)s AND c.created_at < %(end)s
  AND c.outcome = '{Outcome.ABANDONED}'
ORDER BY c.created_at, c.id
LIMIT %(limit)s
"""


def abandoned_calls(*, campaign: Campaign, period: Period, limit: int | None = None) -> list[dict]:
    """The abandoned calls of the period (the first `limit`, or all) with when the safe-harbor message started:
    when Twilio fetched its TwiML, else when we asked for it (the redirect)."""
    rows = _rows(SAFE_HARBOR_SQL, {"campaign": campaign.pk, "start": period.start, "end": period.end,
                                   "limit": limit})
    for row in rows:
        person_at = row["amd_at"] or row["answered_at"]
        row["after_answer_s"] = ((row["safe_harbor_at"] - person_at).total_seconds()
                                 if row["safe_harbor_at"] and person_at else None)
    return rows


SHORT_RING_SQL = f"""
SELECT c.id, c.created_at, ct.name AS contact_name, ct.phone,
       extract(epoch FROM c.ended_at - coalesce(c.ringing_at, c.dialed_at, c.created_at)) ::float8 AS rang_s
FROM {CALL} c JOIN {CONTACT} ct ON ct.id = c.contact_id
WHERE c.campaign_id = %(campaign)s AND c.created_at >= %(start)s AND c.created_at < %(end)s
  AND (%(all)s OR date_trunc('hour', c.created_at) = ANY(%(hours)s::timestamptz[]))
  AND c.outcome = '{Outcome.CANCELED}' AND c.ended_at IS NOT NULL
  AND c.ended_at - coalesce(c.ringing_at, c.dialed_at, c.created_at) < make_interval(secs => %(min_ring_s)s)
ORDER BY c.created_at, c.id
"""


def short_rings(*, campaign: Campaign, period: Period, refresh: bool = True) -> list[dict]:
    """Lines we released (outcome canceled) before they had rung the campaign's minimum ring time (rule 4).
    Should be none."""
    if campaign.min_ring_s <= 0:
        return []
    return _rows(SHORT_RING_SQL, {"campaign": campaign.pk, "min_ring_s": float(campaign.min_ring_s),
                                  **_flagged_hours(campaign, period, "short_rings", refresh)})


OUTSIDE_WINDOW_SQL = f"""
WITH zones(name) AS (SELECT unnest(%(zones)s::text[])),
f AS (
    SELECT c.id, c.created_at, ct.name AS contact_name, ct.phone, ct.time_zone,
           c.created_at AT TIME ZONE z.name AS local_at
    FROM {CALL} c JOIN {CONTACT} ct ON ct.id = c.contact_id LEFT JOIN zones z ON z.name = ct.time_zone
    WHERE c.campaign_id = %(campaign)s AND c.created_at >= %(start)s AND c.created_at < %(end)s
      AND (%(all)s OR date_trunc('hour', c.created_at) = ANY(%(hours)s::timestamptz[]))
)
SELECT id, created_at, contact_name, phone, time_zone, local_at FROM f
WHERE local_at IS NULL OR local_at::time < %(window_start)s OR local_at::time >= %(window_end)s
   OR NOT (extract(isodow FROM local_at)::int = ANY(%(days)s::int[]))
ORDER BY created_at, id
"""


def outside_window(*, campaign: Campaign, period: Period, refresh: bool = True) -> list[dict]:
    """Calls placed when it was outside the campaign's calling window (hours and days) at the contact, or to a
    contact whose time zone is unknown. Should be none: the dial gate checks the same window."""
    return _rows(OUTSIDE_WINDOW_SQL, {
        "zones": _zone_names(), "campaign": campaign.pk, "window_start": campaign.window_start,
        "window_end": campaign.window_end, "days": sorted(calling_days(campaign)),
        **_flagged_hours(campaign, period, "outside_window", refresh)})


DNC_CALLS_SQL = f"""
SELECT c.id, c.created_at, ct.name AS contact_name, ct.phone, min(n.created_at) AS listed_at
FROM {CALL} c JOIN {CONTACT} ct ON ct.id = c.contact_id
JOIN {DoNotCall._meta.db_table} n ON n.phone = ct.phone
     AND (n.campaign_id IS NULL OR n.campaign_id = c.campaign_id) AND n.created_at < c.created_at
WHERE c.campaign_id = %(campaign)s AND c.created_at >= %(start)s AND c.created_at < %(end)s
GROUP BY c.id, c.created_at, ct.name, ct.phone
ORDER BY c.created_at, c.id
"""


def dnc_summary(*, campaign: Campaign, period: Period) -> dict:
    """Contacts the do-not-call lists keep from being dialed (now), and calls placed to a number after it was
    listed (should be none)."""
    listed = DoNotCall.objects.filter(Q(campaign__isnull=True) | Q(campaign=campaign)).values("phone")
    contacts_blocked = campaign.contacts.filter(Q(status=Contact.Status.DNC) | Q(phone__in=listed)).count()
    calls = _rows(DNC_CALLS_SQL, {"campaign": campaign.pk, "start": period.start, "end": period.end})
    return {"contacts_blocked": contacts_blocked, "calls_after_listing": calls}


def cap_changes(*, campaign: Campaign) -> list[dict]:
    """Who set the abandonment cap (or the explicit opt-out) and when: the admin's change history of the
    campaign, plus the opt-out fields where the campaign has them."""
    content_type = ContentType.objects.get_for_model(Campaign)
    # The history names fields by their labels at the time: today's, and the default ones older entries used.
    labels = {str(Campaign._meta.get_field(name).verbose_name).lower()
              for name in CAP_FIELDS if _has_field(name)} | {name.replace("_", " ") for name in CAP_FIELDS}
    result = []
    for entry in (LogEntry.objects.filter(content_type=content_type, object_id=str(campaign.pk))
                  .select_related("user").order_by("action_time")):
        changed = _changed_fields(entry)
        if entry.is_addition() or labels & {name.lower() for name in changed}:
            result.append({"at": entry.action_time, "who": entry.user.get_username(),
                           "what": "created the campaign" if entry.is_addition() else
                           "changed " + ", ".join(sorted(n for n in changed if n.lower() in labels))})
    if _has_field("abandon_cap_opt_out_at") and getattr(campaign, "abandon_cap_opt_out", False):
        by = getattr(campaign, "abandon_cap_opt_out_by", None)
        result.append({"at": campaign.abandon_cap_opt_out_at, "who": by.get_username() if by else "",
                       "what": "opted out of the abandonment cap"})
    result.sort(key=lambda r: (r["at"] is None, r["at"]))
    return result


def _has_field(name: str) -> bool:
    return any(f.name == name for f in Campaign._meta.get_fields())


def _changed_fields(entry: LogEntry) -> list[str]:
    try:
        messages = json.loads(entry.change_message or "[]")
    except ValueError:
        return []
    fields: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and "changed" in message:
            fields += message["changed"].get("fields", [])
    return fields


def _flagged_hours(campaign: Campaign, period: Period, column: str, refresh: bool) -> dict:
    """Query parameters that limit a finding's look-up to the hours the rollups flagged (usually none), or to
    the whole period when it is not read from rollups."""
    params = {"start": period.start, "end": period.end, "all": True, "hours": []}
    if rollups.whole_hours(period):
        if refresh:
            rollups.rollup_refresh(campaign=campaign)
        params["all"] = False
        params["hours"] = rollups.flagged_hours(campaign=campaign, start=period.start, end=period.end,
                                                column=column)
    return params


def _refresh(campaign: Campaign, period: Period, now: dt.datetime | None = None) -> bool:
    """Bring the rollups up to date once for a whole report; True when the report reads them."""
    if rollups.whole_hours(period):
        rollups.rollup_refresh(campaign=campaign, now=now)
        return True
    return False


ABANDONED_SHOWN = 500  # on the page; the CSV lists every one


def compliance_report(*, campaign: Campaign, period: Period, every_call: bool = False) -> dict:
    refresh = not _refresh(campaign, period)
    abandonment = abandonment_by_day(campaign=campaign, period=period, refresh=refresh)
    return {
        "campaign": campaign, "period": period, "abandonment": abandonment,
        "abandoned_total": sum(day["abandoned"] for day in abandonment),
        "abandoned_calls": abandoned_calls(campaign=campaign, period=period,
                                           limit=None if every_call else ABANDONED_SHOWN),
        "short_rings": short_rings(campaign=campaign, period=period, refresh=refresh),
        "outside_window": outside_window(campaign=campaign, period=period, refresh=refresh),
        "dnc": dnc_summary(campaign=campaign, period=period),
        "cap_changes": cap_changes(campaign=campaign),
    }
