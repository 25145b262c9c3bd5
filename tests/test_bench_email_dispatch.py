"""bench/email_dispatch.py runs (at a tiny size) on every suite run, so a schema or service
change that breaks it fails CI instead of waiting for the next measurement. No timing asserted."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.worker
def test_the_email_dispatch_bench_runs_and_checks_its_own_results():
    result = subprocess.run(
        [sys.executable, "-m", "bench.email_dispatch", "--messages", "150", "--baseline", "15", "--smtp", "15"],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert "every email sent once; loyalty_check_ledger: clean" in lines
    assert lines[-1].startswith("email_dispatch: ") and lines[-1].endswith(" messages/s per worker (locmem)")
