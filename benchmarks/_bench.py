"""Shared set-up for the benchmarks: Django on PostgreSQL with a throwaway database `dialer_bench`."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# BENCH_DATABASE (or BENCH_DB) lets two people benchmark on one server without dropping each other's database.
BENCH_DB = os.environ.get("BENCH_DATABASE") or os.environ.get("BENCH_DB", "dialer_bench")


@contextmanager
def bench_database(*, log_level: str = "WARNING", pool_max: int | None = None):
    """Set Django up, create an empty `dialer_bench` database with the schema, and drop it afterwards."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dialer.settings")
    # Benchmarks run against the Twilio sandbox (and its published credentials): say so.
    os.environ.setdefault("TWILIO_SANDBOX", "true")
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    os.environ.setdefault("LOG_LEVEL", log_level)
    if pool_max:
        os.environ.setdefault("DATABASE_POOL_MAX", str(pool_max))
    import django

    django.setup()
    from django.db import close_old_connections, connection

    connection.settings_dict["TEST"]["NAME"] = BENCH_DB
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        yield
    finally:
        close_old_connections()
        connection.close()
        connection.creation.destroy_test_db(BENCH_DB, verbosity=0)
