"""Twilio webhook paths (seed-compatible: the Twilio console settings of a seed install keep working)."""

from django.urls import path

from voice import webhooks

app_name = "voice"

urlpatterns = [
    path("customer-queue", webhooks.customer_queue, name="customer-queue"),
    path("amd-status", webhooks.amd_status, name="amd-status"),
    path("customer-join-conference", webhooks.customer_join_conference, name="customer-join-conference"),
    path("status", webhooks.status, name="status"),
    path("dial", webhooks.dial, name="dial"),
    path("voicemail", webhooks.voicemail, name="voicemail"),
    path("safe-harbor", webhooks.safe_harbor, name="safe-harbor"),
    path("fallback", webhooks.fallback, name="fallback"),
    path("conference-events", webhooks.conference_events, name="conference-events"),
    path("agent-status", webhooks.agent_status, name="agent-status"),
    path("recording-status", webhooks.recording_status, name="recording-status"),
]
