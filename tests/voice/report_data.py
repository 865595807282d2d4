"""One small, fully known floor for the reports' tests (unit, export and browser): every number the reports show
can be worked out by hand from this file.

Two days in New York time. Day 1 at 13:00 (New York contacts at 13:00, Los Angeles contacts at 10:00 local):
c1 alice talks 120 s (interested), c2 bob talks 60 s (not interested), c3 a person abandoned (safe-harbor
message 1.5 s after the verdict), c4 a machine (beep), c5 no answer, c6 voicemail left. Day 2 at 14:00: c7 alice
talks but says it was a machine, c8 busy (to a number put on the do-not-call list the day before), c9 a fax,
c10 released after 3 s of ringing (minimum 15 s). c11 on day 2 at 03:00 at the contact (outside the window).
Ten days before day 1: 10 people reached, 2 abandoned; forty days before: 5 abandoned (outside 30 days).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType

from campaigns.models import AgentStateChange, Campaign, DoNotCall
from tests import factories
from voice.models import Call, WebhookEvent

NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")


@dataclass
class Floor:
    campaign: Campaign
    manager: object
    agent: object
    day1: dt.date
    calls: dict[str, Call]


def _at(day: dt.date, hour: int, minute: int = 0, zone=NY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone)


def build_floor(*, day1: dt.date) -> Floor:
    manager = factories.make_user(username="mia", manager=True, first_name="Mia", last_name="Chen")
    alice = factories.make_user(username="alice", first_name="Alice", last_name="Moreau")
    bob = factories.make_user(username="bob", first_name="Bob", last_name="Stone")
    campaign = factories.make_campaign(agents=[alice, bob], name="Spring renewals", max_abandon_rate=0.03,
                                       min_ring_s=15, window_start=dt.time(9), window_end=dt.time(20))
    sa = factories.make_session(campaign=campaign, agent=alice, state="offline")
    sb = factories.make_session(campaign=campaign, agent=bob, state="offline")
    day2 = day1 + dt.timedelta(days=1)

    def contact(n: int, zone: str = "America/New_York", name: str | None = None):
        return factories.make_contact(campaign=campaign, phone=f"+1212555{n:04d}", name=name or f"Contact {n}",
                                      time_zone=zone)

    t1, t2 = _at(day1, 13), _at(day2, 14)
    calls = {
        "c1": factories.make_call(campaign=campaign, contact=contact(1, name="=HYPERLINK(\"http://x\")"), at=t1,
                                  outcome="talked", answered_by="human", amd_ms=1500, talk_s=120, dialed_for=sa,
                                  bridged_to=sa, code="interested", notes="+1 wants a demo"),
        "c2": factories.make_call(campaign=campaign, contact=contact(2), at=t1, outcome="talked",
                                  answered_by="human", amd_ms=2500, talk_s=60, dialed_for=sb, bridged_to=sb,
                                  code="not-interested", notes="@budget -next year"),
        "c3": factories.make_call(campaign=campaign, contact=contact(3), at=t1, outcome="abandoned",
                                  answered_by="human", amd_ms=1000, dialed_for=sa),
        "c4": factories.make_call(campaign=campaign, contact=contact(4, "America/Los_Angeles"), at=t1,
                                  outcome="machine", answered_by="machine_end_beep", amd_ms=3000, dialed_for=sa),
        "c5": factories.make_call(campaign=campaign, contact=contact(5, "America/Los_Angeles"), at=t1,
                                  outcome="no_answer", ring_s=25, dialed_for=sa),
        "c6": factories.make_call(campaign=campaign, contact=contact(6, "America/Los_Angeles"), at=t1,
                                  outcome="voicemail_left", answered_by="machine_end_silence", amd_ms=4000,
                                  dialed_for=sb),
        "c7": factories.make_call(campaign=campaign, contact=contact(7), at=t2, outcome="talked",
                                  answered_by="human", amd_ms=2000, talk_s=30, amd_corrected=True, dialed_for=sa,
                                  bridged_to=sa),
        "c8": factories.make_call(campaign=campaign, contact=contact(8), at=t2, outcome="busy", ring_s=0,
                                  dialed_for=sb),
        "c9": factories.make_call(campaign=campaign, contact=contact(9), at=t2, outcome="fax", answered_by="fax",
                                  amd_ms=800, dialed_for=sa),
        "c10": factories.make_call(campaign=campaign, contact=contact(10), at=t2, outcome="canceled", ring_s=1,
                                   dialed_for=sb),
        "c11": factories.make_call(campaign=campaign, contact=contact(11), at=_at(day2, 3), outcome="no_answer",
                                   dialed_for=sa),
    }
    # The safe-harbor message for c3: Twilio fetched its TwiML 1.5 s after the verdict.
    c3 = calls["c3"]
    event = WebhookEvent.objects.create(kind="voice", path="/api/voice/safe-harbor", call_sid=c3.sid,
                                        signature_valid=True, status="processed")
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=c3.amd_at + dt.timedelta(seconds=1.5))
    # c8's number went on the global do-not-call list the day before it was called; one more contact is marked.
    listing = DoNotCall.objects.create(phone=calls["c8"].contact.phone, reason="asked")
    DoNotCall.objects.filter(pk=listing.pk).update(created_at=t2 - dt.timedelta(days=1))
    factories.make_contact(campaign=campaign, phone="+12125559999", status="dnc")

    # History for the rolling 30 days: 10 days before, 10 people reached and 2 abandoned; 40 days before,
    # 5 abandoned that the window no longer holds.
    before = _at(day1 - dt.timedelta(days=10), 12)
    for i in range(10):
        factories.make_call(campaign=campaign, contact=contact(100 + i), at=before,
                            outcome="abandoned" if i < 2 else "talked", answered_by="human", amd_ms=1000)
    for i in range(5):
        factories.make_call(campaign=campaign, contact=contact(200 + i), at=_at(day1 - dt.timedelta(days=40), 12),
                            outcome="abandoned", answered_by="human", amd_ms=1000)

    # Agent time on day 1 (New York). Alice: ready 13:50-14:00, talk 2 min, wrap 1 min, ready to 15:00, paused
    # an hour. Bob: ready 5 min, talk 1 min, wrap 2 min, offline.
    log = [(sa, "ready", 13, 50), (sa, "on_call", 14, 0), (sa, "wrap_up", 14, 2), (sa, "ready", 14, 3),
           (sa, "paused", 15, 0), (sa, "offline", 16, 0),
           (sb, "ready", 14, 0), (sb, "on_call", 14, 5), (sb, "wrap_up", 14, 6), (sb, "offline", 14, 8)]
    AgentStateChange.objects.bulk_create([
        AgentStateChange(session=session, state=state, at=_at(day1, hour, minute))
        for session, state, hour, minute in log])

    LogEntry.objects.create(
        user=manager, content_type=ContentType.objects.get_for_model(Campaign), object_id=str(campaign.pk),
        object_repr=campaign.name, action_flag=CHANGE,
        change_message=json.dumps([{"changed": {"fields": ["Max abandon rate", "Lines per agent"]}}]))
    return Floor(campaign=campaign, manager=manager, agent=alice, day1=day1, calls=calls)


# What the reports must show for the period day 1 - day 2, worked out by hand from the floor above.
EXPECTED = {
    "dials": 11, "answered": 7, "reached": 4, "machines": 3, "talked": 3, "abandoned": 1, "conversations": 2,
    "positive": 1, "corrected": 1,
    "talk_s": 120 + 60 + 30,
    # Agent seconds: alice wait 10 min + 57 min, talk 2 min, wrap 1 min, idle 60 min; bob wait 5, talk 1, wrap 2.
    "agent": {"wait_s": (10 + 57 + 5) * 60, "talk_s": (2 + 1) * 60, "wrap_s": (1 + 2) * 60, "idle_s": 3600},
}
