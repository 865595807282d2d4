"""The kill -9 soak, short: daphne and a dialer worker as real child processes, SIGKILLed at random moments
while the sandbox plays a floor (the long run is benchmarks/crash_soak.py)."""

from __future__ import annotations

import pytest

from tests.crash_soak import SoakConfig, run_crash_soak

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("crash-soak")]


def test_killing_the_web_process_and_a_worker_at_random_loses_no_call_no_human_no_contact():
    report = run_crash_soak(SoakConfig(
        duration_s=16.0, agents=4, workers=1, kill_every_s=(2.0, 3.5), down_s=(0.2, 0.6), time_scale=20.0,
        seed=3, reconcile_every_s=3.0, amd_timeout_s=10, min_kills=4, min_calls=6, log=False))
    text = "\n".join(report.lines())
    assert report.kills["web"] + report.kills["worker"] >= 4, text
    assert report.calls >= 6, text  # a floor busy enough for the kills to land mid-call
    assert report.live_after_window == 0, text  # no phantom line
    assert report.held_too_long == [], text  # no person left on hold music
    assert report.dialed_twice_at_once == 0, text
    assert report.agents_with_two_customers == 0, text
