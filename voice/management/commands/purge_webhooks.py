"""`python manage.py purge_webhooks`: delete raw webhooks older than WEBHOOK_RETENTION_DAYS (run it daily)."""

import datetime as dt

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from voice.retention import webhooks_purge


class Command(BaseCommand):
    help = "Delete stored raw webhooks older than the retention period (WEBHOOK_RETENTION_DAYS, or --days)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None)

    def handle(self, *args, days, **options):
        days = settings.WEBHOOK_RETENTION_DAYS if days is None else days
        if days < 1:
            raise CommandError("--days must be at least 1")
        deleted = webhooks_purge(older_than=dt.timedelta(days=days))
        self.stdout.write(f"deleted {deleted} webhooks received more than {days} days ago")
