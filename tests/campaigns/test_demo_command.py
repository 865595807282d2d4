"""`python manage.py demo` as a new user meets it in an 80x24 terminal or through a pipe: a quiet screen whose last
lines are the banner (the URL and the logins), said once, flushed, and honest about reusing earlier data."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_demo(database: Path, *extra: str) -> str:
    """Start the demo with its output piped, wait for the banner, make a few requests, stop it, return its output."""
    port, sandbox_port = _free_port(), _free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "PYTHONUNBUFFERED": ""}
    env.pop("PYTHONUNBUFFERED")  # piped output is block-buffered, as for someone running `make demo | tee`
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(port), "--sandbox-port", str(sandbox_port),
         "--time-scale", "20", *extra],
        cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    try:
        while not any("Ctrl-C stops everything" in line for line in lines):
            assert time.monotonic() < deadline, "".join(lines)
            assert process.poll() is None, "".join(lines)
            time.sleep(0.1)
        # Requests after the banner: at the default verbosity none of them may push it up the screen.
        for path in ("/accounts/login/", "/favicon.ico", "/campaigns/"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}").read()
        time.sleep(1.0)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    return "".join(lines)


def test_the_demo_prints_its_banner_last_quietly_and_says_when_it_reuses_data(tmp_path):
    database = tmp_path / "demo.sqlite3"

    first = _run_demo(database)
    lines = [line for line in first.splitlines() if line.strip()]
    banner_end = next(i for i, line in enumerate(lines) if "Ctrl-C stops everything" in line)
    after = lines[banner_end + 1:]
    # After the banner only our own stop line (it came after Ctrl-C): the requests in between printed nothing.
    assert after == ["Quiet: only warnings and errors are shown from here (-v 2 shows every request).",
                     "demo stopped"], first
    assert "Created the demo data." in first
    assert "agent / agent-demo-pass" in first and "manager / manager-demo-pass" in first
    assert " INFO " not in first and "HTTP GET" not in first and "Starting ASGI" not in first
    assert first.count("Demo") == 1, first  # the campaign's name, not "Dialer demo: Demo: ..."
    assert len(lines) <= 20  # fits an 80x24 terminal with the shell prompt

    second = _run_demo(database)
    assert "Reusing the data of an earlier run" in second and "Created the demo data." not in second
    assert "(300 contacts)" in second  # not 600: the contacts were reused too
