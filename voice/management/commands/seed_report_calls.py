"""Seed a campaign with many finished calls for the reports' benchmark: `seed_report_calls --calls 1000000`.

Writes straight into the database it is pointed at, so point it at a throwaway one (benchmarks/reports.py
creates and drops `dialer_bench`). Everything is generated inside PostgreSQL (generate_series, INSERT ...
SELECT), about 30-60 s for a million calls: a realistic B2B mix of outcomes and AMD verdicts over the last
`--days` days in US business hours, contacts in four US time zones, dispositions for every talk, agent
state changes (log in, talk, wrap-up, a pause, log out) and the safe-harbor fetch of every abandoned call.
"""

from __future__ import annotations

import datetime as dt
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import AgentSession, Campaign
from campaigns.services import disposition_codes_create_defaults

# Cumulative shares of outcomes (B2B list, parallel dialing).
OUTCOMES_SQL = """
    CASE WHEN r_out < 0.42 THEN 'no_answer' WHEN r_out < 0.45 THEN 'busy' WHEN r_out < 0.47 THEN 'failed'
         WHEN r_out < 0.495 THEN 'canceled' WHEN r_out < 0.66 THEN 'machine' WHEN r_out < 0.76 THEN 'voicemail_left'
         WHEN r_out < 0.77 THEN 'fax' WHEN r_out < 0.775 THEN 'abandoned' WHEN r_out < 0.79 THEN 'hung_up_on_hold'
         ELSE 'talked' END
"""

CALLS_SQL = f"""
INSERT INTO voice_call (sid, campaign_id, contact_id, dialed_for_id, bridged_to_id, state, outcome, answered_by,
    amd_duration_ms, amd_corrected, twiml_fetched, twilio_status, last_sequence, version, duration_s, error,
    created_at, dialed_at, ringing_at, answered_at, amd_at, bridged_at, connected_at, ended_at, last_event_at)
SELECT 'CA' || lpad(to_hex(%(campaign)s) || 'x' || g::text, 32, '0'), %(campaign)s,
    %(first_contact)s + (g %% %(contacts)s), session_id,
    CASE WHEN outcome = 'talked' THEN session_id END,
    'ended', outcome,
    CASE WHEN outcome IN ('talked', 'abandoned', 'hung_up_on_hold') THEN (CASE WHEN r_amd < 0.03 THEN 'unknown'
                                                                           ELSE 'human' END)
         WHEN outcome = 'machine' THEN (CASE WHEN r_amd < 0.4 THEN 'machine_start' WHEN r_amd < 0.7
                                        THEN 'machine_end_beep' WHEN r_amd < 0.9 THEN 'machine_end_silence'
                                        ELSE 'machine_end_other' END)
         WHEN outcome = 'voicemail_left' THEN 'machine_end_beep'
         WHEN outcome = 'fax' THEN 'fax' ELSE '' END,
    CASE WHEN answered THEN (800 + r_amd * 3500)::int END,
    outcome = 'talked' AND r_amd > 0.985, answered, 'completed', 5, 6,
    CASE WHEN answered THEN extract(epoch FROM ended_at - answered_at)::int END, '',
    created_at, created_at, created_at + interval '1 second',
    CASE WHEN answered THEN answered_at END, CASE WHEN answered THEN amd_at END,
    CASE WHEN outcome = 'talked' THEN amd_at + interval '300 milliseconds' END,
    CASE WHEN outcome = 'talked' THEN amd_at + interval '1 second' END,
    ended_at, ended_at
FROM (
    SELECT *, created_at + interval '1 second' + ring * interval '1 second' AS answered_at,
        created_at + interval '1 second' + ring * interval '1 second' + (800 + r_amd * 3500) * interval '1 ms'
            AS amd_at,
        outcome IN ('talked', 'abandoned', 'hung_up_on_hold', 'machine', 'voicemail_left', 'fax') AS answered,
        created_at + interval '1 second' + ring * interval '1 second' + (800 + r_amd * 3500) * interval '1 ms'
            + CASE outcome WHEN 'talked' THEN (1 + 30 + r_talk * 570) * interval '1 second'
                           WHEN 'voicemail_left' THEN interval '35 seconds'
                           WHEN 'abandoned' THEN interval '9 seconds'
                           WHEN 'no_answer' THEN interval '0 seconds'
                           ELSE interval '2 seconds' END AS ended_at
    FROM (
        SELECT g, r_amd, r_talk, {OUTCOMES_SQL} AS outcome,
            (%(sessions)s::bigint[])[1 + (g %% %(agents)s)] AS session_id,
            CASE WHEN r_out < 0.42 THEN 25 WHEN r_out < 0.495 AND r_out >= 0.47 THEN 15 + r_ring * 10
                 ELSE 3 + r_ring * 20 END AS ring,
            -- Working hours at the contact (10:00-16:00 daylight time, 9:00-15:00 standard): contact g is in
            -- zone g %% 4, New York first, each one an hour further west.
            %(start)s::timestamptz + ((g::bigint * 7919) %% %(days)s) * interval '1 day'
                + (14 + (1 + (g %% %(contacts)s)) %% 4) * interval '1 hour' + r_time * interval '6 hours' AS created_at
        FROM (SELECT g, random() AS r_out, random() AS r_amd, random() AS r_talk, random() AS r_ring,
                     random() AS r_time
              FROM generate_series(1, %(calls)s) AS g) AS draws
    ) AS shaped
) AS timed
"""

CONTACTS_SQL = """
INSERT INTO campaigns_contact (campaign_id, phone, name, company, email, time_zone, custom_fields, status, attempts,
    last_outcome, priority, created_at)
SELECT %(campaign)s, '+1' || (ARRAY['212', '312', '720', '415'])[1 + g %% 4] || lpad((2000000 + g)::text, 7, '0'),
    'Contact ' || g, 'Company ' || (g %% 997), '', (ARRAY['America/New_York', 'America/Chicago', 'America/Denver',
    'America/Los_Angeles'])[1 + g %% 4], '{}'::jsonb,
    CASE WHEN g %% 50 = 0 THEN 'dnc' WHEN g %% 3 = 0 THEN 'done' ELSE 'pending' END, 1 + g %% 4, 'no_answer', 0, now()
FROM generate_series(1, %(contacts)s) AS g
"""

DISPOSITIONS_SQL = """
INSERT INTO campaigns_disposition (call_id, contact_id, agent_id, code_id, notes, callback_at, created_at)
SELECT c.id, c.contact_id, s.agent_id, (%(codes)s::bigint[])[1 + (c.id %% array_length(%(codes)s::bigint[], 1))],
    CASE WHEN c.id %% 5 = 0 THEN 'Follow up next quarter' ELSE '' END, NULL, c.ended_at + interval '20 seconds'
FROM voice_call c JOIN campaigns_agentsession s ON s.id = c.bridged_to_id
WHERE c.campaign_id = %(campaign)s AND c.outcome = 'talked'
"""

AGENT_LOG_SQL = """
INSERT INTO campaigns_agentstatechange (session_id, state, at)
SELECT c.bridged_to_id, x.state, x.at
FROM voice_call c CROSS JOIN LATERAL (VALUES ('on_call', c.connected_at), ('wrap_up', c.ended_at),
                                             ('ready', c.ended_at + interval '20 seconds')) AS x(state, at)
WHERE c.campaign_id = %(campaign)s AND c.outcome = 'talked'
UNION ALL
SELECT s, x.state, day + x.offset_
FROM unnest(%(sessions)s::bigint[]) AS s,
     generate_series(%(start)s::timestamptz, %(start)s::timestamptz + (%(days)s - 1) * interval '1 day',
                     interval '1 day') AS day,
     LATERAL (VALUES ('ready', interval '12 hours 55 minutes'), ('paused', interval '17 hours'),
                     ('ready', interval '17 hours 30 minutes'), ('offline', interval '21 hours 5 minutes'))
         AS x(state, offset_)
"""

SAFE_HARBOR_SQL = """
INSERT INTO voice_webhookevent (kind, path, call_sid, dedupe_key, params, headers, signature_valid, received_at,
    status, processed_at, attempts, error)
SELECT 'voice', '/api/voice/safe-harbor', c.sid, NULL, '{}'::jsonb, '{}'::jsonb, true,
    c.amd_at + interval '1200 milliseconds', 'processed', c.amd_at + interval '1200 milliseconds', 1, ''
FROM voice_call c WHERE c.campaign_id = %(campaign)s AND c.outcome = 'abandoned'
"""


class Command(BaseCommand):
    help = "Seed one campaign with many finished calls (for the reports' benchmark; use a throwaway database)."

    def add_arguments(self, parser):
        parser.add_argument("--calls", type=int, default=1_000_000)
        parser.add_argument("--days", type=int, default=30, help="spread over the last N days (default 30)")
        parser.add_argument("--agents", type=int, default=50)
        parser.add_argument("--contacts", type=int, default=0, help="default: a quarter of the calls")
        parser.add_argument("--seed", type=float, default=0.42)

    def handle(self, *args, calls: int, days: int, agents: int, contacts: int, seed: float, **options):
        started = time.perf_counter()
        contacts = contacts or max(1, calls // 4)
        campaign_id, sessions, codes = self._campaign(agents)
        day0 = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        params = {"campaign": campaign_id, "calls": calls, "contacts": contacts, "agents": agents, "days": days,
                  "sessions": sessions, "codes": codes,
                  # The days before today: nothing in the future, nothing still changing.
                  "start": day0 - dt.timedelta(days=days)}
        steps = (("contacts", CONTACTS_SQL), ("calls", CALLS_SQL), ("dispositions", DISPOSITIONS_SQL),
                 ("agent state changes", AGENT_LOG_SQL), ("safe-harbor fetches", SAFE_HARBOR_SQL))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT setseed(%s)", [seed])
            for name, sql in steps:
                if name == "calls":
                    cursor.execute("SELECT min(id) FROM campaigns_contact WHERE campaign_id = %s", [campaign_id])
                    params["first_contact"] = cursor.fetchone()[0]
                step_started = time.perf_counter()
                cursor.execute(sql, params)
                self.stdout.write(f"{name}: {cursor.rowcount:,} rows in {time.perf_counter() - step_started:.1f} s")
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE voice_call")
            cursor.execute("ANALYZE campaigns_contact, campaigns_disposition, campaigns_agentstatechange")
        elapsed = time.perf_counter() - started
        self.stdout.write(self.style.SUCCESS(
            f"campaign {campaign_id}: {calls:,} calls over {days} days seeded in {elapsed:.1f} s"))

    def _campaign(self, agents: int) -> tuple[int, list[int], list[int]]:
        users = get_user_model()
        campaign = Campaign.objects.create(name=f"Report benchmark {timezone.now():%Y-%m-%d %H:%M}",
                                           status=Campaign.Status.ENDED, window_days=[1, 2, 3, 4, 5, 6, 7])
        disposition_codes_create_defaults(campaign=campaign)
        sessions = []
        for i in range(agents):
            user, _ = users.objects.get_or_create(username=f"bench-agent-{i:03d}")
            campaign.agents.add(user)
            sessions.append(AgentSession.objects.create(agent=user, campaign=campaign,
                                                        conference_room=AgentSession.new_room_name()).pk)
        codes = list(campaign.disposition_codes.values_list("pk", flat=True))
        return campaign.pk, sessions, codes
