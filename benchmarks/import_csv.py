"""Contact import throughput: generate a realistic CSV, import it into a throwaway campaign, report, clean up.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/import_csv.py --rows 50000

The file mixes the shapes real lists have: national and international formatting, a share of invalid numbers,
numbers repeated within the file, numbers already in the campaign and numbers on the do-not-call list (global
and campaign), a time zone column filled for some rows, and custom columns. It is imported with
`skip_invalid=True` (the admin's "skip bad rows"), so every stage runs: parsing, normalisation, time zone
derivation, the existing/DNC look-ups and the bulk insert. The database must be migrated (this script runs
`migrate` first, which is a no-op on an up-to-date database).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dialer.settings")
# Benchmarks run against the Twilio sandbox (and its published credentials): say so.
os.environ.setdefault("TWILIO_SANDBOX", "true")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from campaigns.imports import RowIssue, contacts_import_csv  # noqa: E402
from campaigns.models import Campaign, Contact, DoNotCall  # noqa: E402
from campaigns.phones import normalize_phone  # noqa: E402

AREA_CODES = (202, 212, 213, 305, 312, 404, 415, 503, 512, 602, 617, 702, 713, 720, 808, 907)
FIRST = ("Ada", "Ben", "Chloe", "Dev", "Eva", "Finn", "Grace", "Hugo", "Ines", "Jon", "Kara", "Liam")
LAST = ("Smith", "Garcia", "Chen", "Okafor", "Novak", "Silva", "Khan", "Murphy", "Rossi", "Berg")
COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises")
ZONES = ("", "", "", "America/New_York", "America/Chicago", "EST", "Pacific")


def _number(rng: random.Random, serial: int) -> str:
    # Valid NANP numbers: exchange 2xx-9xx, a serial line number, so every generated number is distinct.
    area = AREA_CODES[serial % len(AREA_CODES)]
    exchange = 200 + (serial // len(AREA_CODES)) // 10000 % 800
    line = (serial // len(AREA_CODES)) % 10000
    national = f"{area}{exchange}{line:04d}"
    shape = rng.random()
    if shape < 0.4:
        return f"+1{national}"
    if shape < 0.7:
        return f"({national[:3]}) {national[3:6]}-{national[6:]}"
    if shape < 0.9:
        return f"{national[:3]}-{national[3:6]}-{national[6:]}"
    return f"1{national}"


def build_csv(rows: int, seed: int) -> tuple[str, list[str], list[str], list[str]]:
    """The file, plus numbers to seed as existing contacts, global DNC and campaign DNC entries."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Phone Number", "First Name", "Last Name", "Company", "Email", "Time Zone", "Plan", "Owner"])
    issued: list[str] = []
    existing, dnc_global, dnc_campaign = [], [], []
    for i in range(rows):
        roll = rng.random()
        if roll < 0.01:
            phone = rng.choice(("n/a", "12345", "+1 555 010 0000", "call reception"))  # invalid
        elif roll < 0.03 and issued:
            phone = rng.choice(issued)  # repeated within the file
        else:
            phone = _number(rng, i)
            issued.append(phone)
            kind = rng.random()
            if kind < 0.02:
                existing.append(phone)
            elif kind < 0.03:
                dnc_global.append(phone)
            elif kind < 0.035:
                dnc_campaign.append(phone)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        writer.writerow([
            phone, first, last, rng.choice(COMPANIES), f"{first}.{last}{i}@example.com".lower(),
            rng.choice(ZONES), rng.choice(("gold", "silver", "")), f"rep{i % 7}",
        ])
    return out.getvalue(), existing, dnc_global, dnc_campaign


def e164(raw: str, region: str = "US") -> str:
    return normalize_phone(raw, region=region)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--region", default="US")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    logging.getLogger("campaigns.imports").setLevel(logging.WARNING)
    text, existing, dnc_global, dnc_campaign = build_csv(args.rows, args.seed)
    campaign = Campaign.objects.create(name=f"benchmark import {time.time():.0f}", window_days=[1, 2, 3, 4, 5])
    try:
        Contact.objects.bulk_create(Contact(campaign=campaign, phone=e164(p)) for p in existing)
        DoNotCall.objects.bulk_create(
            [DoNotCall(phone=e164(p), reason="benchmark") for p in dnc_global]
            + [DoNotCall(phone=e164(p), campaign=campaign, reason="benchmark") for p in dnc_campaign],
            ignore_conflicts=True,
        )
        size_mb = len(text.encode()) / 1e6
        started, cpu_started = time.perf_counter(), time.process_time()
        report = contacts_import_csv(campaign=campaign, file=io.BytesIO(text.encode()), default_region=args.region,
                                     skip_invalid=True)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        print(f"database      {connection.vendor} ({connection.settings_dict['NAME']})")
        print(f"file          {args.rows} rows, {size_mb:.1f} MB")
        print(f"import        {elapsed:.2f} s  ->  {args.rows / elapsed:,.0f} rows/s "
              f"(this process's CPU {cpu:.2f} s; load average {os.getloadavg()[0]:.1f})")
        print(f"created       {report.created}")
        print(f"duplicates    {len(report.duplicates)} (in file {report.count(RowIssue.DUPLICATE_IN_FILE)}, "
              f"already in campaign {report.count(RowIssue.DUPLICATE_EXISTING)})")
        print(f"do-not-call   {len(report.dnc)} (global {report.count(RowIssue.DNC_GLOBAL)}, "
              f"campaign {report.count(RowIssue.DNC_CAMPAIGN)})")
        print(f"invalid       {len(report.invalid)}")
        assert report.created == Contact.objects.filter(campaign=campaign).count() - len(existing)
    finally:
        DoNotCall.objects.filter(reason="benchmark", campaign__isnull=True,
                                 phone__in=[e164(p) for p in dnc_global]).delete()
        campaign.delete()


if __name__ == "__main__":
    main()
