"""Demo data: one running campaign with a few hundred contacts, an agent and a manager.

Idempotent: running the demo again reuses what is there.
"""

from __future__ import annotations

import random

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from campaigns.models import Campaign, Contact
from campaigns.phones import time_zone_for
from campaigns.services import disposition_codes_create_defaults

DEMO_CAMPAIGN = "Demo: Q4 outreach"
LOGINS = (("agent", "agent-demo-pass", False), ("manager", "manager-demo-pass", True))
FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jon", "Kemi", "Luis")
LAST = ("Nguyen", "Smith", "Okafor", "Garcia", "Kowalski", "Haddad", "Müller", "Tanaka", "Rossi", "Brown")
COMPANIES = ("Northwind", "Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark Industries")
# Fictional but valid NANP numbers (555-01xx) in several time zones, so calling hours matter in the demo.
AREA_CODES = ("202", "212", "305", "312", "415", "503", "602", "713", "808", "907")


@transaction.atomic
def demo_seed(*, contacts: int = 300) -> Campaign:
    users = {}
    for username, password, manager in LOGINS:
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_password(password)
            user.first_name = username.capitalize()
            user.is_staff = manager
            user.save()
        user.groups.add(Group.objects.get_or_create(name="Managers" if manager else "Agents")[0])
        users[username] = user
    campaign = Campaign.objects.filter(name=DEMO_CAMPAIGN).first()
    if campaign is None:
        campaign = Campaign.objects.create(
            name=DEMO_CAMPAIGN, status=Campaign.Status.RUNNING, dial_mode=Campaign.DialMode.PARALLEL,
            lines_per_agent=3, window_days=[1, 2, 3, 4, 5, 6, 7], voicemail_drop=True,
            voicemail_text="Hi, this is the Dialer demo team. Sorry we missed you; we will try again soon.",
            # A fictitious seller: the safe-harbor message names it and its opt-out number.
            seller_name="Northwind Demo Traders", opt_out_number="+12025550143",
            created_by=users["manager"],
        )
        disposition_codes_create_defaults(campaign=campaign)
    if not campaign.has_seller_identity:  # a demo database from before campaigns named their seller
        Campaign.objects.filter(pk=campaign.pk).update(seller_name="Northwind Demo Traders",
                                                       opt_out_number="+12025550143")
    campaign.agents.add(users["agent"], users["manager"])
    missing = contacts - campaign.contacts.count()
    rng = random.Random(7)
    rows = []
    for i in range(max(0, missing)):
        phone = f"+1{AREA_CODES[i % len(AREA_CODES)]}555{(i // len(AREA_CODES)) % 100:02d}{i % 100:02d}"
        rows.append(Contact(
            campaign=campaign, phone=phone, name=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            company=rng.choice(COMPANIES), time_zone=time_zone_for(phone),
            custom_fields={"plan": rng.choice(["Starter", "Growth", "Enterprise"]), "seats": rng.randint(3, 400)},
        ))
    Contact.objects.bulk_create(rows, ignore_conflicts=True)
    return campaign
