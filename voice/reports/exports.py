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
from psycopg import sql

from campaigns.models import Campaign, Contact
from voice.models import Call
from voice.reports import selectors
from voice.reports.period import Period

BOM = "\ufeff"
FORMULA_STARTS = frozenset("=+-@\t\r")
BATCH = 5000  # rows per chunk sent (exports written row by row in Python)
CHUNK_BYTES = 64 * 1024  # bytes per chunk sent (exports written by PostgreSQL)
# Times leave the database already written in the report's zone: parsing a million timestamps in Python would
# cost more than the rest of the export.
LOCAL = "to_char({} AT TIME ZONE {{tz}}, 'YYYY-MM-DD HH24:MI:SS')"
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


def _safe_sql(expr: str) -> str:
    """The same rule as safe_cell, in SQL, for the exports PostgreSQL writes itself."""
    starts = ", ".join(f"chr({ord(ch)})" for ch in sorted(FORMULA_STARTS))
    return f"CASE WHEN left({expr}, 1) IN ({starts}) THEN chr(39) || {expr} ELSE {expr} END"


def copy_csv(query: str, params: dict, *, text_columns: tuple[str, ...]) -> Iterator[bytes]:
    """Stream `query` as CSV written by PostgreSQL (`COPY ... TO STDOUT`): no Python per row, so a million rows
    leave as fast as the database reads them, in chunks of about 64 kB. Text columns are quoted. The statement
    runs on the request's connection while the response streams; nothing is held in memory."""
    force_quote = ", ".join(text_columns)
    copy = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER, FORCE_QUOTE ({}), ENCODING 'UTF8')").format(
        sql.SQL(query).format(**{name: sql.Literal(value) for name, value in params.items()}),
        sql.SQL(force_quote))
    connection.ensure_connection()
    raw = connection.connection
    yield BOM.encode("utf-8")
    pending: list[bytes] = []
    size = 0
    with raw.cursor() as cursor, cursor.copy(copy) as stream:
        for block in stream:
            pending.append(bytes(block))
            size += len(block)
            if size >= CHUNK_BYTES:
                yield b"".join(pending)
                pending, size = [], 0
    yield b"".join(pending)


def _local(value: dt.datetime | None, period: Period) -> str:
    return value.astimezone(period.zone).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _recording_field() -> str | None:
    # Recordings arrive with their own issue; the column is filled once calls carry a recording URL.
    names = {f.name for f in Call._meta.get_fields()}
    return "recording_url" if "recording_url" in names else None


CALLS_HEADER = ["call_id", "placed_at", "contact", "phone", "agent", "outcome", "amd_verdict", "ring_s", "hold_s",
                "talk_s", "disposition", "notes", "recording"]
CALLS_TEXT = ("placed_at", "contact", "phone", "agent", "outcome", "amd_verdict", "disposition", "notes", "recording")

# The period's calls in placed order with their contact, agent and disposition. {name} are values bound by
# psycopg (as literals: COPY takes no parameters), the rest is fixed text.
CALLS_SQL = f"""
SELECT c.id AS call_id, {LOCAL.format("c.created_at")} AS placed_at, {_safe_sql("ct.name")} AS contact,
       {_safe_sql("ct.phone")} AS phone, {_safe_sql("coalesce(u.username, '')")} AS agent,
       {_safe_sql("c.outcome")} AS outcome, {_safe_sql("c.answered_by")} AS amd_verdict,
       {SECONDS.format("coalesce(c.answered_at, c.ended_at)", "coalesce(c.ringing_at, c.dialed_at)")} AS ring_s,
       {SECONDS.format("coalesce(c.connected_at, c.ended_at)", "c.answered_at")} AS hold_s,
       {SECONDS.format("c.ended_at", "c.connected_at")} AS talk_s,
       {_safe_sql("coalesce(dc.label, '')")} AS disposition, {_safe_sql("coalesce(d.notes, '')")} AS notes,
       [recording] AS recording
FROM voice_call c
JOIN campaigns_contact ct ON ct.id = c.contact_id
LEFT JOIN campaigns_agentsession s ON s.id = coalesce(c.bridged_to_id, c.dialed_for_id)
LEFT JOIN [users] u ON u.id = s.agent_id
LEFT JOIN campaigns_disposition d ON d.call_id = c.id
LEFT JOIN campaigns_dispositioncode dc ON dc.id = d.code_id
WHERE c.campaign_id = {{campaign}} AND c.created_at >= {{start}} AND c.created_at < {{end}}
ORDER BY c.created_at, c.id
"""


def _users_table() -> str:
    return get_user_model()._meta.db_table


def calls_csv(*, campaign: Campaign, period: Period) -> Iterator[bytes]:
    """One row per call placed in the period, oldest first."""
    recording = _recording_field()
    query = (CALLS_SQL.replace("[recording]", _safe_sql(f"coalesce(c.{recording}, '')") if recording else "''")
             .replace("[users]", _users_table()))
    return copy_csv(query, {"campaign": campaign.pk, "start": period.start, "end": period.end,
                            "tz": period.tz_name}, text_columns=CALLS_TEXT)


DISPOSITIONS_HEADER = ["call_id", "placed_at", "disposed_at", "agent", "contact", "phone", "code", "label",
                       "conversation", "positive", "callback_at", "notes"]
DISPOSITIONS_TEXT = ("placed_at", "disposed_at", "agent", "contact", "phone", "code", "label", "conversation",
                     "positive", "callback_at", "notes")

DISPOSITIONS_SQL = f"""
SELECT c.id AS call_id, {LOCAL.format("c.created_at")} AS placed_at, {LOCAL.format("d.created_at")} AS disposed_at,
       {_safe_sql("u.username")} AS agent, {_safe_sql("ct.name")} AS contact, {_safe_sql("ct.phone")} AS phone,
       {_safe_sql("dc.code")} AS code, {_safe_sql("dc.label")} AS label,
       CASE WHEN dc.is_conversation THEN 'yes' ELSE 'no' END AS conversation,
       CASE WHEN dc.is_positive THEN 'yes' ELSE 'no' END AS positive,
       coalesce({LOCAL.format("d.callback_at")}, '') AS callback_at, {_safe_sql("d.notes")} AS notes
FROM voice_call c
JOIN campaigns_disposition d ON d.call_id = c.id
JOIN campaigns_dispositioncode dc ON dc.id = d.code_id
JOIN campaigns_contact ct ON ct.id = c.contact_id
JOIN [users] u ON u.id = d.agent_id
WHERE c.campaign_id = {{campaign}} AND c.created_at >= {{start}} AND c.created_at < {{end}}
ORDER BY c.created_at, c.id
"""


def dispositions_csv(*, campaign: Campaign, period: Period) -> Iterator[bytes]:
    """One row per disposition of a call placed in the period (the period means the same on every report)."""
    return copy_csv(DISPOSITIONS_SQL.replace("[users]", _users_table()),
                    {"campaign": campaign.pk, "start": period.start, "end": period.end, "tz": period.tz_name},
                    text_columns=DISPOSITIONS_TEXT)


CONTACTS_HEADER = ["contact_id", "name", "company", "phone", "email", "time_zone", "status", "attempts",
                   "last_outcome", "last_called_at", "next_attempt_at"]
CONTACTS_TEXT = ("name", "company", "phone", "email", "time_zone", "status", "last_outcome", "last_called_at",
                 "next_attempt_at")
STATUS_SQL = "CASE status " + " ".join(
    f"WHEN '{value}' THEN '{label}'" for value, label in Contact.Status.choices) + " ELSE status END"

CONTACTS_SQL = f"""
SELECT id AS contact_id, {_safe_sql("name")} AS name, {_safe_sql("company")} AS company,
       {_safe_sql("phone")} AS phone, {_safe_sql("email")} AS email, {_safe_sql("time_zone")} AS time_zone,
       {STATUS_SQL} AS status, attempts, {_safe_sql("last_outcome")} AS last_outcome,
       coalesce({LOCAL.format("last_called_at")}, '') AS last_called_at,
       coalesce({LOCAL.format("next_attempt_at")}, '') AS next_attempt_at
FROM campaigns_contact
WHERE campaign_id = {{campaign}}
ORDER BY phone
"""


def contacts_csv(*, campaign: Campaign, period: Period) -> Iterator[bytes]:
    """Every contact of the campaign as it stands now, by number: status and attempts (the period gives the
    time zone of the dates)."""
    return copy_csv(CONTACTS_SQL, {"campaign": campaign.pk, "tz": period.tz_name}, text_columns=CONTACTS_TEXT)


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
