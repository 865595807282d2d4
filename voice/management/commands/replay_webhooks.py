from django.core.management.base import BaseCommand

from voice import inbox
from voice.models import WebhookEvent


class Command(BaseCommand):
    help = "Process stored webhooks again: the failed ones by default, or the given ids."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int)

    def handle(self, *args, ids, **options):
        rows = WebhookEvent.objects.filter(pk__in=ids) if ids else WebhookEvent.objects.filter(status="failed")
        results: dict[str, int] = {}
        for event in rows.order_by("received_at"):
            status = inbox.webhook_replay(event=event)
            results[status] = results.get(status, 0) + 1
        self.stdout.write(", ".join(f"{k}: {v}" for k, v in sorted(results.items())) or "nothing to replay")
