"""Raw webhooks (signatures, phone numbers, every parameter Twilio sent) are kept WEBHOOK_RETENTION_DAYS, then
deleted. Calls and their event log stay; an event's link to its deleted webhook becomes empty."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from voice.models import WebhookEvent


def webhooks_purge(*, older_than: dt.timedelta, batch_size: int = 2000, now: dt.datetime | None = None) -> int:
    """Delete webhook rows received before now - older_than, in batches (short transactions, so webhooks
    arriving meanwhile are never held up). Returns how many were deleted."""
    cutoff = (now or timezone.now()) - older_than
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(WebhookEvent.objects.filter(received_at__lt=cutoff).order_by("pk")
                       .values_list("pk", flat=True)[:batch_size])
            if not ids:
                return deleted
            deleted += WebhookEvent.objects.filter(pk__in=ids).delete()[1].get("voice.WebhookEvent", 0)
