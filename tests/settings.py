"""Test settings: the project's settings on the real PostgreSQL, never SQLite."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
# Race tests run 16 threads at once, each with its own connection.
os.environ.setdefault("DATABASE_POOL_MAX", "30")
# The suite runs against the Twilio sandbox, and says so: sandbox mode is never guessed.
os.environ.setdefault("TWILIO_SANDBOX", "true")

from dialer.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
# Twilio effects run on the committing thread so a test sees them once the webhook answered; the thread pool
# is tested on its own (tests/voice/test_outbox.py).
OUTBOX_INLINE = True
# Service tests drive agents without a browser; the presence tests turn this on.
PRESENCE_REQUIRE_CONSOLE = False

# Login throttling stays on; each test starts from a clean slate (tests/conftest.py resets the cache).
API_THROTTLE_RATE = 10_000
