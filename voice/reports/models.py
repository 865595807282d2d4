"""Hourly rollups of a campaign's calls and agent time, so a report over a million calls adds up a few
thousand rows. Written only by voice.reports.rollups; every figure can be rebuilt from the calls."""

from __future__ import annotations

from django.db import models


class CallHourStat(models.Model):
    """The measures of the calls placed in one UTC hour (and the agent time spent in it), once for the whole
    campaign (`dim` "total") and once per value of each breakdown: the contact's local hour, the agent session,
    the AMD verdict, the disposition code, the AMD latency (100 ms buckets per verdict) and agent time per
    session and state."""

    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField(help_text="Start of the UTC hour.")
    dim = models.CharField(max_length=12)
    key = models.CharField(max_length=64, blank=True)
    dials = models.IntegerField(default=0)
    answered = models.IntegerField(default=0)
    reached = models.IntegerField(default=0)
    machines = models.IntegerField(default=0)
    talked = models.IntegerField(default=0)
    abandoned = models.IntegerField(default=0)
    safe_harbor = models.IntegerField(default=0, help_text="Abandoned calls that heard the safe-harbor message.")
    conversations = models.IntegerField(default=0)
    positive = models.IntegerField(default=0)
    corrected = models.IntegerField(default=0)
    short_rings = models.IntegerField(default=0)
    outside_window = models.IntegerField(default=0)
    talk_s = models.FloatField(default=0)
    line_s = models.FloatField(default=0)
    amd_n = models.IntegerField(default=0)
    amd_ms_sum = models.FloatField(default=0)
    seconds = models.FloatField(default=0, help_text="Agent time (dim agent_time).")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "hour", "dim", "key"], name="call_hour_stat_unique")]
        # The rolling abandonment reads one breakdown ("total") over 30 days and more.
        indexes = [models.Index(fields=["campaign", "dim", "hour"], name="call_hour_stat_dim_idx")]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.hour:%Y-%m-%d %H}h {self.dim}={self.key}"


class RollupMark(models.Model):
    """Up to when a campaign's rollups are current: rows that changed after this (less a margin for
    transactions still open then) are rolled up again before the next report."""

    campaign = models.OneToOneField("campaigns.Campaign", on_delete=models.CASCADE, primary_key=True,
                                    related_name="+")
    refreshed_at = models.DateTimeField()
    settings = models.CharField(max_length=64, blank=True,
                                help_text="Fingerprint of the campaign settings the rollups were computed with.")

    def __str__(self) -> str:
        return f"{self.campaign_id} at {self.refreshed_at}"
