"""Delete call recordings older than the retention (RECORDING_RETENTION_DAYS), at Twilio and here."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from voice.recordings import recordings_purge


class Command(BaseCommand):
    help = "Delete recordings older than RECORDING_RETENTION_DAYS (or --days), at Twilio too. Run it daily."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None,
                            help=f"keep this many days (default: RECORDING_RETENTION_DAYS, "
                                 f"{settings.RECORDING_RETENTION_DAYS})")

    def handle(self, *args, days: int | None, **options):
        if days is not None and days < 0:
            raise CommandError("--days cannot be negative")
        deleted, failed = recordings_purge(older_than_days=days)
        self.stdout.write(f"deleted {deleted} recording(s); {failed} could not be deleted at Twilio (kept, retry)")
        if failed:
            raise CommandError(f"{failed} recording(s) could not be deleted at Twilio")
