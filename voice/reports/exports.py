"""CSV exports for managers: streamed in batches (a million rows never sit in memory), UTF-8 with a byte-order
mark so spreadsheets read the encoding right, and formula-safe as OWASP recommends ("CSV Injection"): a text
cell that starts with =, +, -, @, a tab or a carriage return gets a leading apostrophe, and every text cell is
quoted, so a contact named "=HYPERLINK(...)" stays text in Excel, LibreOffice and Google Sheets.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator

from django.contrib.auth import get_user_model
from django.db import connection

from campaigns.models import AgentSession, Campaign, Contact
from voice.models import Call
from voice.reports import selectors
from voice.reports.period import Period

BOM = "\ufeff"
FORMULA_STARTS = frozenset("=+-@\t\r")
BATCH = 5000  # rows per query and per chunk sent
# Times leave the database already written in the report's zone: parsing a million timestamps in Python would
# cost more than the rest of the export.
LOCAL = "to_char({} AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI:SS')"
SECONDS = "round(extract(epoch FROM {} - {}))::int"


def safe_cell(value):
    """A value as a spreadsheet should read it: numbers stay numbers, text can never be a formula."""
    if value is None:
        return ""
    if value.__class__ is str:
        return "'" + value if value[:1] in FORMULA_STARTS else value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if text[:1] in FORMULA_STARTS else text


def stream_csv(header: list[str], rows: Iterable[list]) -> Iterator[bytes]:
    """The CSV as UTF-8 chunks of about BATCH rows, the byte-order mark first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(header)
    for count, row in enumerate(rows, 1):
        writer.writerow([safe_cell(v) for v in row])
        if count % BATCH == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _keyset(sql: str, params: dict, *, key: tuple[str, ...], first: tuple) -> Iterator[tuple]:
    """Rows of `sql` page by page in `key` order: each page is one short query that starts just after the last
    row of the one before (`(key) > (%(after_0)s, ...)`, walked along an index), so no cursor stays open across
    the response and a deep page costs what the first one does. `sql` selects the key columns first."""
    after = first
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, {**params, **{f"after_{i}": v for i, v in enumerate(after)}, "limit": BATCH})
            rows = cursor.fetchall()
        yield from rows
        if len(rows) < BATCH:
            return
        after = rows[-1][:len(key)]


def _local(value: dt.datetime | None, period: Period) -> str:
    return value.astimezone(period.zone).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _seconds(later: dt.datetime | None, earlier: dt.datetime | None) -> int | str:
    return round((later - earlier).total_seconds()) if later and earlier else ""


def _agent_names(campaign: Campaign) -> dict[int, str]:
    sessions = AgentSession.objects.filter(campaign=campaign).select_related("agent")
    return {s.pk: s.agent.get_username() for s in sessions}


def _recording_field() -> str | None:
    # Recordings arrive with their own issue; the column is filled once calls carry a recording URL.
    names = {f.name for f in Call._meta.get_fields()}
    return "recording_url" if "recording_url" in names else None


CALLS_HEADER = ["call_id", "placed_at", "contact", "phone", "agent", "outcome", "amd_verdict", "ring_s", "hold_s",
                "talk_s", "disposition", "notes", "recording"]

# The period's calls in placed order, with the contact and the disposition: the index on (campaign, created_at,
# id) drives it, the joins are index look-ups per row. The key goes out as text and comes back exact.
CALLS_SQL = f"""
SELECT c.created_at::text, c.id, {LOCAL.format("c.created_at")}, ct.name, ct.phone,
       coalesce(c.bridged_to_id, c.dialed_for_id), c.outcome, c.answered_by,
       {SECONDS.format("coalesce(c.answered_at, c.ended_at)", "coalesce(c.ringing_at, c.dialed_at)")},
       {SECONDS.format("coalesce(c.connected_at, c.ended_at)", "c.answered_at")},
       {SECONDS.format("c.ended_at", "c.connected_at")}, dc.label, d.notes, {{recording}}
FROM voice_call c
JOIN campaigns_contact ct ON ct.id = c.contact_id
LEFT JOIN campaigns_disposition d ON d.call_id = c.id
LEFT JOIN campaigns_dispositioncode dc ON dc.id = d.code_id
WHERE c.campaign_id = %(campaign)s AND c.created_at < %(end)s
  -- The campaign id leads the row comparison so that the whole of it is the index scan's start key.
  AND (c.campaign_id, c.created_at, c.id) > (%(campaign)s, %(after_0)s::timestamptz, %(after_1)s)
ORDER BY c.created_at, c.id
LIMIT %(limit)s
"""


def calls_csv(*, campaign: Campaign, period: Period) -> Iterator[bytes]:
    """One row per call placed in the period, oldest first."""
    names = _agent_names(campaign)
    recording = _recording_field()
    sql = CALLS_SQL.format(recording=f"c.{recording}" if recording else "''")
    params = {"campaign": campaign.pk, "end": period.end, "tz": period.tz_name}

    def rows():
        for _, pk, placed_at, name, phone, session, *rest in _keyset(
                sql, params, key=("created_at", "id"), first=(period.start, 0)):
            yield [pk, placed_at, name, phone, names.get(session, ""), *rest]

    return stream_csv(CALLS_HEADER, rows())


DISPOSITIONS_HEADER = ["call_id", "placed_at", "disposed_at", "agent", "contact", "phone", "code", "label",
                       "conversation", "positive", "callback_at", "notes"]

DISPOSITIONS_SQL = f"""
SELECT c.created_at::text, c.id, {LOCAL.format("c.created_at")}, {LOCAL.format("d.created_at")}, u.username,
       ct.name, ct.phone, dc.code, dc.label, dc.is_conversation, dc.is_positive, {LOCAL.format("d.callback_at")},
       d.notes
FROM voice_call c
JOIN campaigns_disposition d ON d.call_id = c.id
JOIN campaigns_dispositioncode dc ON dc.id = d.code_id
JOIN campaigns_contact ct ON ct.id = c.contact_id
JOIN {{users}} u ON u.id = d.agent_id
WHERE c.campaign_id = %(campaign)s AND c.created_at < %(end)s
  AND (c.campaign_id, c.created_at, c.id) > (%(campaign)s, %(after_0)s::timestamptz, %(after_1)s)
ORDER BY c.created_at, c.id
LIMIT %(limit)s
"""


def dispositions_csv(*, campaign: Campaign, period: Period) -> Iterator[bytes]:
    """One row per disposition of a call placed in the period (the period means the same on every report)."""
    params = {"campaign": campaign.pk, "end": period.end, "tz": period.tz_name}
    sql = DISPOSITIONS_SQL.format(users=get_user_model()._meta.db_table)
    rows = (row[1:] for row in _keyset(sql, params, key=("created_at", "id"), first=(period.start, 0)))
    return stream_csv(DISPOSITIONS_HEADER, rows)


CONTACTS_HEADER = ["contact_id", "name", "company", "phone", "email", "time_zone", "status", "attempts",
                   "last_outcome", "last_called_at", "next_attempt_at"]

# Walked along the unique index on (campaign, phone).
CONTACTS_SQL = f"""
SELECT phone, id, name, company, phone, email, time_zone, status, attempts, last_outcome,
       {LOCAL.format("last_called_at")}, {LOCAL.format("next_attempt_at")}
FROM campaigns_contact
WHERE campaign_id = %(campaign)s AND (campaign_id, phone) > (%(campaign)s, %(after_0)s)
ORDER BY phone
LIMIT %(limit)s
"""


def contacts_csv(*, campaign: Campaign, period: Period) -> Iterator[bytes]:
    """Every contact of the campaign as it stands now, by number: status and attempts (the period gives the
    time zone of the dates)."""
    labels = dict(Contact.Status.choices)

    def rows():
        for _, pk, name, company, phone, email, zone, status, *rest in _keyset(
                CONTACTS_SQL, {"campaign": campaign.pk, "tz": period.tz_name}, key=("phone",), first=("",)):
            yield [pk, name, company, phone, email, zone, labels.get(status, status), *rest]

    return stream_csv(CONTACTS_HEADER, rows())


AGENTS_HEADER = ["agent", "dials", "reached", "connect_rate", "conversations", "conversations_per_agent_hour",
                 "talk_s", "wrap_s", "wait_s", "idle_s", "lines_per_agent", "abandoned_while_assigned"]


def _round(value: float | None, digits: int = 3):
    return round(value, digits) if value is not None else ""


def agent_rows(report: dict) -> list[list]:
    rows = []
    for agent in report["agents"]:
        m = agent["m"]
        rows.append([agent["name"], m.dials, m.reached, _round(m.connect_rate), m.conversations,
                     _round(m.conversations_per_agent_hour, 2), round(m.talk_s),
                     *(round(m.agent.get(k, 0.0)) for k in ("wrap_s", "wait_s", "idle_s")),
                     _round(m.lines_per_agent, 2), m.abandoned])
    return rows


def agents_csv(*, campaign: Campaign, period: Period) -> Iterator[bytes]:
    """The reports page's per-agent table."""
    report = selectors.campaign_report(campaign=campaign, period=period)
    return stream_csv(AGENTS_HEADER, agent_rows(report))


COMPLIANCE_HEADER = ["section", "time", "call_id", "contact", "phone", "figure", "detail"]


def compliance_rows(report: dict, period: Period) -> Iterator[list]:
    cap = report["campaign"].max_abandon_rate
    for day in report["abandonment"]:
        yield ["abandonment by day", day["day"].isoformat(), "", "", "", _round(day["rolling_rate"], 4),
               f"rolling 30 days {day['rolling_abandoned']}/{day['rolling_reached']} vs cap {cap:.2%}; "
               f"that day {day['abandoned']}/{day['reached']}" + ("; OVER THE CAP" if day["over_cap"] else "")]
    for call in report["abandoned_calls"]:
        yield ["abandoned call", _local(call["created_at"], period), call["id"], call["contact_name"], call["phone"],
               _round(call["after_answer_s"], 2),
               "safe-harbor message started " + (_local(call["safe_harbor_at"], period) or "NEVER")]
    for call in report["short_rings"]:
        yield ["ring shorter than the minimum", _local(call["created_at"], period), call["id"], call["contact_name"],
               call["phone"], _round(float(call["rang_s"]), 1), f"minimum {report['campaign'].min_ring_s} s"]
    for call in report["outside_window"]:
        yield ["outside the calling window", _local(call["created_at"], period), call["id"], call["contact_name"],
               call["phone"], "", f"contact's local time {call['local_at'] or 'unknown'} ({call['time_zone'] or '?'})"]
    yield ["do-not-call: contacts blocked", "", "", "", "", report["dnc"]["contacts_blocked"], ""]
    for call in report["dnc"]["calls_after_listing"]:
        yield ["do-not-call: called after listing", _local(call["created_at"], period), call["id"],
               call["contact_name"], call["phone"], "", "listed " + _local(call["listed_at"], period)]
    for change in report["cap_changes"]:
        yield ["cap or opt-out change", _local(change["at"], period), "", "", "", "",
               f"{change['who']}: {change['what']}"]


def compliance_csv(*, campaign: Campaign, period: Period) -> Iterator[bytes]:
    report = selectors.compliance_report(campaign=campaign, period=period, every_call=True)
    return stream_csv(COMPLIANCE_HEADER, compliance_rows(report, period))
