"""Absolute webhook URLs, built from PUBLIC_BASE_URL (never the Host header) so signatures match."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse


def webhook_path(name: str, **query) -> str:
    path = reverse(f"voice:{name}")
    return f"{path}?{urlencode(query)}" if query else path


def webhook_url(name: str, **query) -> str:
    return settings.PUBLIC_BASE_URL + webhook_path(name, **query)
