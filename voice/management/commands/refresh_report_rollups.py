"""Bring the reports' hourly rollups up to date: `refresh_report_rollups [--campaign ID ...]`.

Reports do this themselves before they read, so this is optional: run it from cron (every few minutes) to keep
each report's own refresh down to the last minutes, and once after importing a large history so the first
manager to open the reports does not wait for a campaign's whole history to be rolled up.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from campaigns.models import Campaign
from voice.reports.rollups import rollup_refresh


class Command(BaseCommand):
    help = "Bring the reports' hourly rollups up to date (every campaign, or the ones named)."

    def add_arguments(self, parser):
        parser.add_argument("--campaign", type=int, action="append", help="a campaign id (repeatable)")

    def handle(self, *args, campaign=None, **options):
        campaigns = Campaign.objects.order_by("pk")
        if campaign:
            campaigns = campaigns.filter(pk__in=campaign)
        for item in campaigns:
            started = time.perf_counter()
            hours = rollup_refresh(campaign=item)
            what = "rolled up from the start" if hours < 0 else f"{hours} changed hour(s) rolled up again"
            self.stdout.write(f"campaign {item.pk}: {what} in {time.perf_counter() - started:.2f} s")
