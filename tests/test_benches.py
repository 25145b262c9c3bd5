"""Every bench in bench/ runs, at a tiny size, in the suite: a schema or API change that breaks one fails
here instead of waiting to be found. Each runs as its own process, as a person would start it (the
database ones make and drop a throwaway database of their own). No timing assertions: only that the
run finishes and prints its summary."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def run_bench(module: str, *args: str, timeout: int = 300) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the bench sets its own (config.settings)
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"bench.{module} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the bench's data generator is PostgreSQL SQL (set DATABASE_URL)"
)


def test_at_risk_quality_bench_runs():
    pytest.importorskip("lifetimes")
    out = run_bench("at_risk_quality", "--customers", "2000", "--feedback-customers", "2000")
    assert "r                       0.2426         0.243  PASS" in out  # the published sample fit
    assert "=== SYNTHETIC feedback experiment, strong effect" in out


def test_at_risk_quality_all_cuts_prints_its_table_and_summary_line():
    pytest.importorskip("lifetimes")
    out = run_bench("at_risk_quality", "--all-cuts", "--data", "sample", "--cuts", "2")
    lines = out.strip().splitlines()
    assert sum(line.startswith(("1998-02-28", "1998-03-31")) for line in lines) == 4  # 2 cuts x 2 horizons
    assert lines[-1].startswith("at_risk_quality: worst AUC margin over recency ")
    assert ", mean margin " in lines[-1] and " points, worst one-time AUC " in lines[-1]


@needs_postgresql
def test_health_refresh_bench_runs():
    out = run_bench(
        "health_refresh", "--members", "2000", "--purchases", "12000", "--sample", "50", "--chunk-size", "700"
    )
    assert "model fit:" in out and "fitted, " in out
    assert "target: refresh of 1,000,000 members" in out


@needs_postgresql
def test_backfill_bench_runs():
    out = run_bench("backfill", "--orders", "3000", "--customers", "300", "--chunk-size", "1000")
    assert "balance" in out


def test_award_overhead_bench_runs():
    out = run_bench(
        "award_overhead", "--orders", "20", "--requests", "10", "--customers", "10", "--rounds", "2", "--backlog", "200"
    )
    assert "ratio" in out

# bench/email_dispatch.py: tests/test_bench_email_dispatch.py
