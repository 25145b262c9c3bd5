"""A database of its own for a bench run: created from the migrations, dropped afterwards.

Never the test suite's ``test_<name>``; Ctrl-C (even when started with SIGINT ignored, as
background jobs are), SIGTERM and SIGHUP all unwind through the teardown, so a
multi-gigabyte database never stays behind.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def throwaway_database(prefix: str) -> Iterator[None]:
    """Run the block against a fresh ``<prefix>_<pid>`` database (call after ``django.setup()``)."""
    from django.conf import settings
    from django.test.utils import setup_databases, teardown_databases

    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = f"{prefix}_{os.getpid()}"
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        name = settings.DATABASES["default"]["NAME"]
        try:
            teardown_databases(old_config, verbosity=0)
        except Exception as exc:  # noqa: BLE001 - last resort: make sure the database goes
            print(f"teardown failed ({exc!r}); dropping {name} with FORCE")
            _force_drop(old_config, name)


def _force_drop(old_config, name: str) -> None:
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    params["dbname"] = old_config[0][1] if old_config and old_config[0][1] else "postgres"
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
