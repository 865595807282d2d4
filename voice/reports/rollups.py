"""Hourly rollups behind the reports: `rollup_refresh` brings a campaign's CallHourStat rows up to date, and
`rollup_figures` reads a period from them.

Up to date means: every UTC hour in which a call changed, a disposition was written or agent time passed since
the last refresh is rolled up again from the calls (delete and insert, one transaction, under the campaign's
advisory lock so two reports do not race). What changed is found by time stamps: a call's row changes only
through `voice.services.call_apply`, which stamps `last_event_at`; dispositions and agent state changes are
append-only with their own time. Rows written by a transaction that was still open when the last refresh
looked are caught by looking back MARGIN further. The first report of a campaign rolls up all of it (a few
seconds for a million calls); later ones only the last hour or so.

A period whose time zone is a whole number of hours from UTC reads whole UTC hours, exactly. Other zones
(India, Newfoundland, ...) cut hours in two: the selectors read those periods from the calls themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import Campaign, DispositionCode
from voice.gate import calling_days
from voice.reports import conditions
from voice.reports.models import CallHourStat, RollupMark
from voice.reports.period import Period

MARGIN = dt.timedelta(minutes=5)
# Agent time per (session, state) for the per-agent table, and per state alone for the per-day one.
AGENT_DIMS = ("agent_time", "agent_state")
LOCK_NAMESPACE = 0x52505254  # "RPRT": pg_advisory_xact_lock(namespace, campaign id)
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
AMD_BUCKET_MS = 200  # the latency histogram's resolution: percentiles are exact to +-100 ms

STAT = CallHourStat._meta.db_table
SUMS = ("dials", "answered", "reached", "machines", "talked", "abandoned", "safe_harbor", "conversations", "positive",
        "corrected", "short_rings", "outside_window", "talk_s", "line_s", "amd_n", "amd_ms_sum", "seconds")

# An abandoned call heard the safe-harbor message when Twilio fetched its TwiML (else when we redirected to it).
SAFE_HARBOR_HEARD = """(c.outcome = 'abandoned' AND (
            EXISTS (SELECT 1 FROM voice_webhookevent w WHERE w.call_sid = c.sid AND w.path LIKE '%%/safe-harbor%%')
            OR EXISTS (SELECT 1 FROM voice_callevent e WHERE e.call_id = c.id
                       AND e.data -> 'effects' @> '["redirect_safe_harbor"]'::jsonb))) AS safe_harbor"""

# One pass over the calls of the dirty hours: the measures per hour, for the whole campaign and per breakdown.
CALLS_SQL = f"""
WITH zones(name) AS (SELECT unnest(%(zones)s::text[])),
f AS (
    SELECT
        date_trunc('hour', c.created_at) AS hour,
        extract(hour FROM c.created_at AT TIME ZONE z.name)::int AS local_hour,
        coalesce(c.bridged_to_id, c.dialed_for_id) AS session_id,
        c.answered_by, c.outcome, c.answered_at, c.amd_duration_ms, c.amd_corrected,
        {conditions.HUMAN.sql} AS human,
        {conditions.MACHINE.sql} AS machine,
        extract(epoch FROM c.ended_at - c.connected_at)::float8 AS talk_s,
        extract(epoch FROM c.ended_at - c.created_at)::float8 AS line_s,
        {SAFE_HARBOR_HEARD},
        (c.amd_duration_ms / {AMD_BUCKET_MS}) * {AMD_BUCKET_MS} AS amd_bucket,
        d.code_id,
        coalesce(dc.is_conversation, false) AS conversation,
        coalesce(dc.is_positive, false) AS positive,
        (c.outcome = 'canceled' AND c.ended_at - coalesce(c.ringing_at, c.dialed_at, c.created_at)
            < make_interval(secs => %(min_ring_s)s)) AS short_ring,
        (z.name IS NULL OR (c.created_at AT TIME ZONE z.name)::time < %(window_start)s
            OR (c.created_at AT TIME ZONE z.name)::time >= %(window_end)s
            OR NOT (extract(isodow FROM c.created_at AT TIME ZONE z.name)::int = ANY(%(days)s::int[])))
            AS outside_window
    FROM voice_call c
    JOIN campaigns_contact ct ON ct.id = c.contact_id
    LEFT JOIN zones z ON z.name = ct.time_zone
    LEFT JOIN campaigns_disposition d ON d.call_id = c.id
    LEFT JOIN campaigns_dispositioncode dc ON dc.id = d.code_id
    WHERE c.campaign_id = %(campaign)s AND c.created_at >= %(lo)s AND c.created_at < %(hi)s
      AND (%(all)s OR date_trunc('hour', c.created_at) = ANY(%(hours)s::timestamptz[]))
)
INSERT INTO {STAT} (campaign_id, hour, dim, key, dials, answered, reached, machines, talked, abandoned,
                    safe_harbor, conversations, positive, corrected, short_rings, outside_window, talk_s, line_s,
                    amd_n, amd_ms_sum, seconds)
SELECT %(campaign)s, hour,
    CASE WHEN grouping(local_hour) = 0 THEN 'local_hour' WHEN grouping(session_id) = 0 THEN 'session'
         WHEN grouping(code_id) = 0 THEN 'code' WHEN grouping(amd_bucket) = 0 THEN 'amd_ms'
         WHEN grouping(answered_by) = 0 THEN 'answered_by' ELSE 'total' END,
    CASE WHEN grouping(local_hour) = 0 THEN coalesce(local_hour::text, '')
         WHEN grouping(session_id) = 0 THEN coalesce(session_id::text, '')
         WHEN grouping(code_id) = 0 THEN coalesce(code_id::text, '')
         WHEN grouping(amd_bucket) = 0 THEN answered_by || '|' || amd_bucket::text
         WHEN grouping(answered_by) = 0 THEN answered_by ELSE '' END,
    count(*), count(*) FILTER (WHERE answered_at IS NOT NULL), count(*) FILTER (WHERE human),
    count(*) FILTER (WHERE machine), count(*) FILTER (WHERE outcome = 'talked'),
    count(*) FILTER (WHERE outcome = 'abandoned'), count(*) FILTER (WHERE safe_harbor),
    count(*) FILTER (WHERE conversation),
    count(*) FILTER (WHERE positive), count(*) FILTER (WHERE amd_corrected), count(*) FILTER (WHERE short_ring),
    count(*) FILTER (WHERE outside_window), coalesce(sum(talk_s), 0), coalesce(sum(line_s), 0),
    count(amd_duration_ms), coalesce(sum(amd_duration_ms), 0)::float8, 0
FROM f
GROUP BY hour, GROUPING SETS ((), (local_hour), (session_id), (code_id), (answered_by), (answered_by, amd_bucket))
HAVING grouping(amd_bucket) = 1 OR amd_bucket IS NOT NULL
"""

# Agent time from the state log, cut at hour boundaries, from `lo` until now.
AGENT_SQL = f"""
WITH sessions AS (SELECT id FROM campaigns_agentsession WHERE campaign_id = %(campaign)s),
changes AS (
    SELECT ch.session_id, ch.state, ch.at FROM campaigns_agentstatechange ch
    WHERE ch.session_id IN (SELECT id FROM sessions) AND ch.at >= %(lo)s
    UNION ALL
    SELECT s.id, before.state, before.at FROM sessions s
    CROSS JOIN LATERAL (
        SELECT state, at FROM campaigns_agentstatechange
        WHERE session_id = s.id AND at < %(lo)s ORDER BY at DESC LIMIT 1
    ) before
),
spans AS (
    SELECT session_id, state, greatest(at, %(lo)s) AS since,
           least(lead(at, 1, %(until)s) OVER (PARTITION BY session_id ORDER BY at), %(until)s) AS until
    FROM changes
),
cut AS (
    SELECT session_id, state, h AS hour,
           extract(epoch FROM least(until, h + interval '1 hour') - greatest(since, h))::float8 AS seconds
    FROM spans CROSS JOIN LATERAL generate_series(date_trunc('hour', since), until - interval '1 microsecond',
                                                  interval '1 hour') AS h
    WHERE until > since AND state <> 'offline'
)
INSERT INTO {STAT} (campaign_id, hour, dim, key, dials, answered, reached, machines, talked, abandoned,
                    safe_harbor, conversations, positive, corrected, short_rings, outside_window, talk_s, line_s,
                    amd_n, amd_ms_sum, seconds)
SELECT %(campaign)s, hour, CASE WHEN grouping(session_id) = 0 THEN 'agent_time' ELSE 'agent_state' END,
       CASE WHEN grouping(session_id) = 0 THEN session_id::text || '|' || state ELSE state END,
       0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, sum(seconds)
FROM cut GROUP BY hour, state, GROUPING SETS ((session_id), ())
"""

DIRTY_SQL = """
SELECT DISTINCT date_trunc('hour', c.created_at) FROM voice_call c
WHERE c.campaign_id = %(campaign)s AND c.last_event_at >= %(since)s
UNION
SELECT date_trunc('hour', c.created_at) FROM voice_call c
WHERE c.campaign_id = %(campaign)s AND c.created_at >= %(since)s
UNION
SELECT date_trunc('hour', c.created_at) FROM campaigns_disposition d JOIN voice_call c ON c.id = d.call_id
WHERE d.created_at >= %(since)s AND c.campaign_id = %(campaign)s
"""


def _lock(campaign_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, campaign_id])


def _call_params(campaign: Campaign) -> dict:
    from voice.reports.selectors import _zone_names

    # CALLS_SQL uses the rules' conditions: their values go with it.
    return {**conditions.PARAMS, "campaign": campaign.pk, "zones": _zone_names(),
            "min_ring_s": float(campaign.min_ring_s), "window_start": campaign.window_start,
            "window_end": campaign.window_end, "days": sorted(calling_days(campaign))}


def _settings_fingerprint(campaign: Campaign, params: dict) -> str:
    """What the rolled-up figures depend on besides the calls: the calling window and minimum ring (compliance
    flags) and what each disposition code counts as. When any of these change, everything is rolled up again."""
    codes = sorted(DispositionCode.objects.filter(campaign=campaign).values_list("pk", "is_conversation",
                                                                                 "is_positive"))
    text = repr((str(params["window_start"]), str(params["window_end"]), params["days"], params["min_ring_s"], codes))
    return hashlib.sha256(text.encode()).hexdigest()


def rollup_refresh(*, campaign: Campaign, now: dt.datetime | None = None) -> int:
    """Roll up what changed since the last refresh; returns how many call-hours were rolled up again (-1: all
    of them, the first time or after a change of the settings the figures depend on)."""
    now = now or timezone.now()
    with transaction.atomic():
        _lock(campaign.pk)
        mark = RollupMark.objects.filter(campaign=campaign).first()
        params = _call_params(campaign)
        fingerprint = _settings_fingerprint(campaign, params)
        with connection.cursor() as cursor:
            if mark is None or mark.settings != fingerprint:
                CallHourStat.objects.filter(campaign=campaign).delete()
                hours = None
                cursor.execute(CALLS_SQL, {**params, "lo": EPOCH, "hi": now + HOUR, "all": True, "hours": []})
                agent_from = EPOCH
            else:
                since = mark.refreshed_at - MARGIN
                cursor.execute(DIRTY_SQL, {"campaign": campaign.pk, "since": since})
                hours = sorted(row[0] for row in cursor.fetchall())
                if hours:
                    CallHourStat.objects.filter(campaign=campaign, hour__in=hours).exclude(dim__in=AGENT_DIMS).delete()
                    cursor.execute(CALLS_SQL, {**params, "lo": hours[0], "hi": hours[-1] + HOUR, "all": False,
                                               "hours": hours})
                # Agent time only grows at the end: the spans open at the last refresh went on, and new
                # changes are appended at their own time.
                agent_from = since.replace(minute=0, second=0, microsecond=0)
            CallHourStat.objects.filter(campaign=campaign, dim__in=AGENT_DIMS, hour__gte=agent_from).delete()
            cursor.execute(AGENT_SQL, {"campaign": campaign.pk, "lo": agent_from, "until": now})
        RollupMark.objects.update_or_create(campaign=campaign,
                                            defaults={"refreshed_at": now, "settings": fingerprint})
    return -1 if hours is None else len(hours)


def whole_hours(period: Period) -> bool:
    """Whether the period's days begin and end on UTC hours (every zone but the half- and quarter-hour ones)."""
    return all(period.zone.utcoffset(moment.replace(tzinfo=None)).total_seconds() % 3600 == 0
               for moment in (period.start, period.end))


_SUMS_SQL = ", ".join(f"sum({name}) AS {name}" for name in SUMS)
# Every breakdown over the period, the campaign and agent time per local day, the campaign per local hour.
READ_SQL = f"""
WITH s AS (
    SELECT *, (hour AT TIME ZONE %(tz)s)::date AS day, extract(hour FROM hour AT TIME ZONE %(tz)s)::int AS hod
    FROM {STAT} WHERE campaign_id = %(campaign)s AND hour >= %(start)s AND hour < %(end)s
)
SELECT dim, key, NULL::date AS day, NULL::int AS hod, 1 AS g_day, 1 AS g_hod, {_SUMS_SQL}
FROM s GROUP BY dim, key
UNION ALL
SELECT dim, key, day, NULL, 0, 1, {_SUMS_SQL} FROM s WHERE dim IN ('total', 'agent_state') GROUP BY dim, key, day
UNION ALL
SELECT dim, key, NULL, hod, 1, 0, {_SUMS_SQL} FROM s WHERE dim = 'total' GROUP BY dim, key, hod
"""


def rollup_rows(*, campaign: Campaign, start: dt.datetime, end: dt.datetime, tz: str) -> list[dict]:
    """Sums per (dim, key) over [start, end), per (dim, key, local day) and per (dim, key, local hour)."""
    with connection.cursor() as cursor:
        cursor.execute(READ_SQL, {"campaign": campaign.pk, "start": start, "end": end, "tz": tz})
        names = [col.name for col in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


DAILY_ABANDON_SQL = f"""
SELECT (hour AT TIME ZONE %(tz)s)::date AS day, sum(reached) AS reached, sum(abandoned) AS abandoned
FROM {STAT} WHERE campaign_id = %(campaign)s AND dim = 'total' AND hour >= %(since)s AND hour < %(end)s
GROUP BY day
"""


def flagged_hours(*, campaign: Campaign, start: dt.datetime, end: dt.datetime, column: str) -> list[dt.datetime]:
    """The hours in which the rollups counted a compliance finding (`short_rings`, `outside_window`)."""
    assert column in ("short_rings", "outside_window")
    return list(CallHourStat.objects.filter(campaign=campaign, dim="total", hour__gte=start, hour__lt=end,
                                            **{f"{column}__gt": 0}).values_list("hour", flat=True))
