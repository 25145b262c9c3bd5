"""The nightly customer-health refresh at scale: fit, first and next-day refresh, chunks, naive baseline.

Generates a programme of ``--members`` members (default 1,000,000) with ``--purchases`` purchases
(default 10,000,000) in set-based SQL (``INSERT ... SELECT ... generate_series``, ``setseed``), then
measures in one run, each timed on its own with ``time.perf_counter()``:

- the weekly model fit (``health_fit_model``: per-member aggregates over all purchases, BG/NBD,
  Gamma-Gamma and the at-risk backtest);
- the first nightly refresh (``health_refresh``: every member's row is inserted, every member gets a
  segment change from "" to their segment);
- the refresh the next day, after a day of new purchases (steady state: upserts, few segment changes);
- a chunked run as the ``refresh_health`` Celery task does it (``health_refresh_start``, then
  ``health_refresh_range`` + ``health_chunk_done`` per ``--chunk-size`` chunk), timed per chunk;
- a naive per-member ORM loop (aggregate query, Python scoring, ``update_or_create``) on a random
  ``--sample`` of members, after the measurements, extrapolated per member: the ratio naive/ours;
- with ``--profile``: one more refresh under cProfile (where the Python time goes) and
  ``EXPLAIN (ANALYZE, BUFFERS)`` of the two big aggregate statements.

Each run also reports where its time went without a profiler. The bench calls the public stage
functions of ``loyalty.services.health`` itself, in the order the service runs them, and times each
call: the fit as ``health_load_buyers`` -> ``health_fit`` -> save; a refresh as the ``refresh_health``
task runs it, ``health_refresh_start``, then per chunk ``health_load`` -> ``health_score`` ->
``health_store`` and ``health_chunk_done``. Of each stage's time, the SQL statements' share is
measured through ``connection.execute_wrapper``; the rest is Python (and, in the store, the COMMIT).

The data: members join over ``--years`` (3) years, ids in join order; ~28% never buy; buyers'
purchase rates are Gamma(0.5)-distributed (a chi-square draw: heavy-tailed, like NBD), times the
length of their active life; ~45% of buyers lapse (an exponential active life, mean 180 days);
every buyer has at least one purchase and the rest are shared out exactly to ``--purchases``;
amounts are log-normal around a per-member average; 95.5% paid, 2% partially refunded, 2.5%
refunded. Purchases are inserted in ``occurred_at`` order (ids follow time, as in production, so a
member's purchases are scattered over the table). The load drops the secondary indexes, unique
and foreign-key constraints of auth_user, loyalty_member and loyalty_purchase, and recreates them
from their saved definitions afterwards (checked identical), then ``VACUUM ANALYZE`` + ``CHECKPOINT``;
the measured runs use the server's settings (the load's ``work_mem``/``maintenance_work_mem`` are reset).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.health_refresh
    DATABASE_URL=... .venv/bin/python -m bench.health_refresh --members 20000 --purchases 200000 --profile

It creates and drops its own throwaway database (``bench_health_refresh_<pid>``; PostgreSQL only)
and runs with DEBUG off, as production does. Target: a refresh of 1,000,000 members with
10,000,000 purchases in under 60 s (2-core machine).
"""

import argparse
import os
import secrets
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throwaway import throwaway_database

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The project has no secret key default without DEBUG (on here it would slow every query down).
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("LOYALTY_LOG_LEVEL", "WARNING")
os.environ.setdefault("DEBUG", "False")

TARGET_SECONDS = 60.0
TARGET_MEMBERS = 1_000_000
NOW = datetime(2025, 6, 2, 2, 0, tzinfo=timezone.utc)  # the first nightly run; the data ends here
LOADED_TABLES = ("auth_user", "loyalty_member", "loyalty_purchase")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=10_000_000)
    parser.add_argument("--years", type=float, default=3.0, help="history length")
    parser.add_argument("--chunk-size", type=int, default=250_000, help="members per chunk of the chunked run")
    parser.add_argument("--sample", type=int, default=10_000, help="members the naive ORM loop scores")
    parser.add_argument("--seed", type=float, default=0.42, help="setseed() value, -1..1")
    parser.add_argument("--profile", action="store_true", help="profile one more refresh; EXPLAIN the aggregates")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        parser.error("the data generator is PostgreSQL SQL: set DATABASE_URL=postgres://...")
    from threadpoolctl import threadpool_limits

    with throwaway_database("bench_health_refresh"), threadpool_limits(limits=1):  # one BLAS thread, as the tasks
        run(args)


# --- data -----------------------------------------------------------------------------------------------------


def secondary_schema(cursor, table: str) -> tuple[list, list]:
    """Indexes not backing a constraint, and unique/foreign-key constraints: (name, definition) pairs."""
    cursor.execute(
        """
        SELECT c.relname, pg_get_indexdef(i.indexrelid)
          FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = %s::regclass
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
         ORDER BY 1
        """,
        [table],
    )
    indexes = cursor.fetchall()
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('u', 'f') ORDER BY 1",
        [table],
    )
    return indexes, cursor.fetchall()


def drop_secondary(cursor, table: str) -> tuple[list, list]:
    indexes, constraints = secondary_schema(cursor, table)
    for name, _ in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    return indexes, constraints


def restore_secondary(cursor, table: str, saved: tuple[list, list]) -> None:
    indexes, constraints = saved
    for _, definition in indexes:
        cursor.execute(definition)
    for name, definition in constraints:  # unique ones build their index; foreign keys validate in one scan
        cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    assert secondary_schema(cursor, table) == saved, f"{table}: indexes/constraints differ after the load"


NORMAL = "(sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))"  # Box-Muller, one N(0, 1) draw


def generate(*, program_id: int, members: int, purchases: int, years: float, seed: float) -> dict[str, float]:
    """Users, members and purchases in set-based SQL; returns seconds per step."""
    from django.db import connection

    span = years * 365.0
    steps: dict[str, float] = {}
    with connection.cursor() as cursor:

        def step(label: str, sql: str, params=None) -> None:
            start = time.perf_counter()
            cursor.execute(sql, params)
            steps[label] = steps.get(label, 0.0) + time.perf_counter() - start

        cursor.execute("SELECT setseed(%s)", [seed])
        cursor.execute("SET work_mem = '512MB'")
        cursor.execute("SET maintenance_work_mem = '1GB'")
        start = time.perf_counter()
        saved = {table: drop_secondary(cursor, table) for table in LOADED_TABLES}
        steps["drop indexes/constraints"] = time.perf_counter() - start

        # Per-member plan: buyer?, days since first purchase (age), active days, join date, rate, average order.
        step(
            "member plan",
            f"""
            CREATE TEMP TABLE bench_plan AS
            SELECT n, buyer, age,
                   CASE WHEN buyer AND lapses THEN LEAST(age, -ln(1 - u_life) * 180.0) ELSE age END AS active,
                   CASE WHEN buyer THEN age + join_before ELSE join_any END AS joined_days_ago,
                   aov, rate
              FROM (SELECT g AS n, random() < 0.72 AS buyer, random() * %(span)s AS age,
                           random() < 0.45 AS lapses, random() AS u_life,
                           CASE WHEN random() < 0.5 THEN 0 ELSE random() * 60 END AS join_before,
                           random() * %(span)s AS join_any,
                           exp(3.3 + 0.5 * {NORMAL}) AS aov,
                           power({NORMAL}, 2) AS rate
                      FROM generate_series(1, %(members)s) g OFFSET 0) s
            """,
            {"span": span, "members": members},
        )
        cursor.execute("SELECT count(*) FROM bench_plan WHERE buyer")
        buyers = cursor.fetchone()[0]
        base = 1 if purchases >= buyers else 0  # every buyer buys once, the rest is shared by rate x active days
        extra = purchases - base * buyers
        step(
            "member plan",
            """
            CREATE TEMP TABLE bench_plan2 AS
            SELECT n, buyer, age, active, joined_days_ago, aov,
                   row_number() OVER (ORDER BY joined_days_ago DESC, n) AS seq,
                   CASE WHEN buyer THEN %(base)s ELSE 0 END
                     + (share - COALESCE(lag(share) OVER (ORDER BY n), 0))::int AS n_purchases
              FROM (SELECT *, floor(CASE WHEN total > 0 THEN (cum / total) * %(extra)s ELSE 0 END) AS share
                      FROM (SELECT *, max(cum) OVER () AS total
                              FROM (SELECT *, sum(weight) OVER (ORDER BY n) AS cum
                                      FROM (SELECT *, CASE WHEN buyer THEN rate * active ELSE 0 END AS weight
                                              FROM bench_plan) w) c) t) s
            """,
            {"base": base, "extra": extra},
        )
        step(
            "users",
            """
            INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, last_name, email,
                                   is_staff, is_active, date_joined)
            SELECT '!', NULL, false, 'bench' || seq, '', '', 'bench' || seq || '@example.com', false, true,
                   %(now)s - joined_days_ago * interval '1 day'
              FROM bench_plan2 ORDER BY seq
            """,
            {"now": NOW},
        )
        step(
            "members",
            """
            INSERT INTO loyalty_member (program_id, user_id, balance, lifetime_points, joined_at, orders_count,
                                        last_purchase_at, pending_points, marketing_consent)
            SELECT %(program)s, u.id, 0, 0, u.date_joined, p.n_purchases, NULL, 0, random() < 0.6
              FROM bench_plan2 p JOIN auth_user u ON u.username = 'bench' || p.seq
             ORDER BY p.seq
            """,
            {"program": program_id},
        )
        step(
            "members",
            """
            CREATE TEMP TABLE bench_buyers AS
            SELECT m.id AS member_id, u.email, p.seq, p.age, p.active, p.aov, p.n_purchases
              FROM bench_plan2 p JOIN auth_user u ON u.username = 'bench' || p.seq
              JOIN loyalty_member m ON m.user_id = u.id AND m.program_id = %(program)s
             WHERE p.n_purchases > 0
            """,
            {"program": program_id},
        )
        cursor.execute("DROP TABLE bench_plan, bench_plan2")
        step(
            "purchases",
            f"""
            INSERT INTO loyalty_purchase (program_id, member_id, email, order_reference, amount, refunded_amount,
                                          currency, status, points_earned, points_reversed, occurred_at, category)
            SELECT %(program)s, member_id, email, ref, amount,
                   CASE WHEN s < 0.955 THEN 0
                        WHEN s < 0.975 THEN round(amount * (0.1 + 0.8 * s2)::numeric, 2)
                        ELSE amount END,
                   'EUR',
                   CASE WHEN s < 0.955 THEN 'paid' WHEN s < 0.975 THEN 'partially_refunded' ELSE 'refunded' END,
                   0, 0, occurred_at, ''
              FROM (SELECT b.member_id, b.email, 'BR' || b.seq || '-' || k AS ref,
                           GREATEST(round((b.aov * exp(0.35 * {NORMAL}))::numeric, 2), 1.00) AS amount,
                           random() AS s, random() AS s2,
                           %(now)s - (b.age - CASE WHEN k = 1 THEN 0 ELSE random() * b.active END)
                                     * interval '1 day' AS occurred_at
                      FROM bench_buyers b CROSS JOIN LATERAL generate_series(1, b.n_purchases) k
                    OFFSET 0) x
             ORDER BY occurred_at
            """,
            {"program": program_id, "now": NOW},
        )
        start = time.perf_counter()
        for table in LOADED_TABLES:
            restore_secondary(cursor, table, saved[table])
        steps["recreate indexes/constraints"] = time.perf_counter() - start
        cursor.execute("RESET work_mem")
        cursor.execute("RESET maintenance_work_mem")
        cursor.execute("DELETE FROM bench_buyers WHERE active < age - 1")  # keep who still buys: next days' buyers
        step("vacuum analyze + checkpoint", "VACUUM ANALYZE auth_user, loyalty_member, loyalty_purchase")
        step("vacuum analyze + checkpoint", "CHECKPOINT")
    return steps


def add_day_of_purchases(*, program_id: int, day: datetime, count: int) -> None:
    """``count`` purchases by still-active buyers during the day before ``day`` (what a night's refresh sees)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO loyalty_purchase (program_id, member_id, email, order_reference, amount, refunded_amount,
                                          currency, status, points_earned, points_reversed, occurred_at, category)
            SELECT %(program)s, member_id, email, 'BD' || %(tag)s || '-' || row_number() OVER (),
                   GREATEST(round((aov * exp(0.35 * {NORMAL}))::numeric, 2), 1.00), 0, 'EUR', 'paid', 0, 0,
                   %(day)s - random() * interval '1 day', ''
              FROM (SELECT member_id, email, aov FROM bench_buyers ORDER BY random() LIMIT %(count)s) b
            """,
            {"program": program_id, "tag": day.strftime("%Y%m%d"), "day": day, "count": count},
        )


# --- instrumentation ------------------------------------------------------------------------------------------


class Breakdown:
    """Where a run's time goes, stage by stage: each stage's wall time and, of it, the SQL statements'
    time (``connection.execute_wrapper``); the rest is Python (and, in the store stage, the COMMIT with its
    deferred foreign-key checks). The stages are the service's public functions, which this bench calls
    one by one in the order the service runs them: nothing in the service is replaced or looked up by name.
    """

    def __init__(self) -> None:
        self.stages: dict[str, list[float]] = {}  # label -> [seconds, SQL seconds, statements, calls]
        self.slowest: dict[str, tuple[float, str, object]] = {}  # label -> its slowest statement (for EXPLAIN)
        self.current: str | None = None

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - start
            if self.current is not None:
                row = self.stages[self.current]
                row[1] += elapsed
                row[2] += 1
                if elapsed > self.slowest.get(self.current, (0.0,))[0]:
                    self.slowest[self.current] = (elapsed, sql, params)

    @contextmanager
    def stage(self, label: str):
        row = self.stages.setdefault(label, [0.0, 0.0, 0, 0])
        outer, self.current = self.current, label
        start = time.perf_counter()
        try:
            yield
        finally:
            row[0] += time.perf_counter() - start
            row[3] += 1
            self.current = outer

    def seconds(self, label: str) -> float:
        return self.stages.get(label, [0.0])[0]

    def lines(self, total: float) -> list[str]:
        head = f"{'seconds':>9}{'share':>8}{'SQL s':>8}{'stmts':>7}{'other s':>9}{'calls':>7}"
        out = [f"    {'where the time went':<44}{head}"]
        for label, (seconds, sql, statements, calls) in self.stages.items():
            out.append(
                f"    {label:<44}{seconds:>9.2f}{seconds / total:>8.0%}{sql:>8.2f}{statements:>7}"
                f"{seconds - sql:>9.2f}{calls:>7}"
            )
        rest = total - sum(row[0] for row in self.stages.values())
        out.append(f"    {'between the stages':<44}{rest:>9.2f}{rest / total:>8.0%}")
        return out


LOAD_BUYERS, FIT, SAVE = "load buyers (health_load_buyers)", "fit (health_fit)", "save the fit"
START, LOAD, SCORE, STORE, DONE = (
    "start (health_refresh_start)",
    "load (health_load)",
    "score (health_score)",
    "store (health_store)",
    "chunk done, finish (health_chunk_done)",
)


def fit_in_stages(*, program, now: datetime, breakdown: Breakdown):
    """The weekly fit as ``health_fit_model`` runs it (load the buyers, fit, save), each stage timed."""
    from loyalty.services.health import health_fit, health_load_buyers

    started = time.perf_counter()
    with breakdown.stage(LOAD_BUYERS):
        data = health_load_buyers(program=program, now=now)
    with breakdown.stage(FIT):
        fit = health_fit(program=program, data=data, now=now)
    fit.seconds = time.perf_counter() - started
    with breakdown.stage(SAVE):
        fit.save()
    return fit


def refresh_in_stages(*, program, now: datetime, breakdown: Breakdown, chunk_size: int | None = None):
    """A nightly refresh as the ``refresh_health`` task runs it, each stage timed: ``health_refresh_start``,
    then per chunk the stages of ``health_refresh_range`` (``health_load``, ``health_score``,
    ``health_store``) and ``health_chunk_done``, the last of which closes the run."""
    from loyalty.models import HealthRun
    from loyalty.services.health import (
        health_chunk_done,
        health_load,
        health_refresh_start,
        health_score,
        health_settings_for,
        health_store,
    )

    with breakdown.stage(START):
        run_, ranges = health_refresh_start(program=program, now=now, chunk_size=chunk_size)
    for lo, hi in ranges:
        with breakdown.stage(LOAD):
            policy = health_settings_for(program)
            data = health_load(run=run_, lo=lo, hi=hi, policy=policy)
        if len(data.member_ids):
            with breakdown.stage(SCORE):
                scores = health_score(data=data, run=run_, policy=policy)
            with breakdown.stage(STORE):
                health_store(program=program, now=now, scores=scores)
        with breakdown.stage(DONE):
            health_chunk_done(run_id=run_.pk)
    return HealthRun.objects.get(pk=run_.pk)


def instrumented(func, **kwargs):
    """Run ``func(breakdown=..., **kwargs)`` with SQL timing on; returns (result, seconds, breakdown)."""
    from django.db import connection

    breakdown = Breakdown()
    with connection.execute_wrapper(breakdown):
        start = time.perf_counter()
        result = func(breakdown=breakdown, **kwargs)
        elapsed = time.perf_counter() - start
    return result, elapsed, breakdown


# --- the naive baseline ---------------------------------------------------------------------------------------


def naive_refresh(*, member_ids: list[int], program, now: datetime, run, policy) -> int:
    """What a first implementation does: per member an ORM aggregate, Python scoring, ``update_or_create``.

    It gets the run's RFM breakpoints and model for free (computed once, set-based) and writes less
    than the real refresh (no segment-change log, no CLV or expected purchases): a conservative baseline.
    """
    import math

    import numpy as np
    from django.db.models import Count, F, Max, Min, Sum
    from django.db.models.functions import TruncDate

    from loyalty.health import bgnbd, rfm
    from loyalty.models import CustomerHealth, Member, Purchase, Segment
    from loyalty.services.health import COUNTED_STATUSES, OVERRIDABLE

    cut = run.cutpoints
    grid = {**rfm.DEFAULT_GRID, **(policy.rfm_grid or {})}
    fit = run.fit
    params = bgnbd.BGNBDParams(r=fit.r, alpha=fit.alpha, a=fit.a, b=fit.b) if fit and fit.usable else None
    horizon_weeks = policy.horizon_days / 7.0
    now_day = now.timestamp() / 86400.0
    overridable = {str(s) for s in OVERRIDABLE}

    def quintile(value: float, dim: str) -> int:  # the service's bounds, one member at a time
        return int(rfm.quintile_scores(np.array([value]), cut.get(dim) or {})[0])

    scored = 0
    for member in Member.objects.filter(pk__in=member_ids).order_by("pk"):
        agg = Purchase.objects.filter(member=member, status__in=COUNTED_STATUSES, occurred_at__lte=now).aggregate(
            first=Min("occurred_at"),
            last=Max("occurred_at"),
            orders=Count("pk"),
            days=Count(TruncDate("occurred_at", tzinfo=timezone.utc), distinct=True),
            spent=Sum(F("amount") - F("refunded_amount")),
        )
        values = {"program": program, "segment_since": now, "computed_at": now, "scored_by": run.scored_by}
        if agg["orders"]:
            first, last = agg["first"].timestamp() / 86400.0, agg["last"].timestamp() / 86400.0
            orders, days, spent = agg["orders"], agg["days"], float(agg["spent"])
            recency, age = int(now_day - last), int(now_day - first)
            gap = (last - first) / (days - 1) if days > 1 else None
            r, f, m = quintile(math.floor(last), "r"), quintile(orders, "f"), quintile(math.floor(spent), "m")
            segment = grid[f"{r},{(f + m + 1) // 2}"]
            real = orders >= policy.min_orders or m >= 5
            typical = gap if gap is not None else cut.get("median_gap_days")
            overdue = bool(real and typical and recency > float(policy.gap_factor) * typical)
            p_lapse = None
            if params is not None:
                weeks = np.array([days - 1.0]), np.array([(last - first) / 7.0]), np.array([(now_day - first) / 7.0])
                p_lapse = float(bgnbd.p_no_purchase(params, horizon_weeks, *weeks)[0])
            model = bool(real and p_lapse is not None and p_lapse > float(policy.lapse_threshold))
            if (model or overdue) and segment in overridable:
                segment = Segment.AT_RISK
            reason = "both" if model and overdue else "model" if model else "gap" if overdue else ""
            if segment == Segment.AT_RISK and not reason:
                reason = "rfm"
            values.update(
                orders=orders,
                frequency=days - 1,
                first_purchase_at=agg["first"],
                last_purchase_at=agg["last"],
                recency_days=recency,
                age_days=age,
                typical_gap_days=gap,
                total_spent=round(spent, 2),
                monetary=round(spent / orders, 2),
                r_score=r,
                f_score=f,
                m_score=m,
                p_lapse=p_lapse,
                segment=segment,
                at_risk=segment == Segment.AT_RISK,
                risk_reason=reason if segment == Segment.AT_RISK else "",
            )
        else:
            values.update(segment=Segment.PROSPECTS, at_risk=False, risk_reason="")
        CustomerHealth.objects.update_or_create(member=member, defaults=values)
        scored += 1
    return scored


# --- the run --------------------------------------------------------------------------------------------------


def run(args) -> None:
    from django.conf import settings
    from django.db import connection

    from loyalty.models import CustomerHealth, HealthRun, Program, Purchase, SegmentChange
    from loyalty.services.health import (
        health_chunk_done,
        health_refresh_range,
        health_refresh_start,
        health_settings_for,
    )

    def size(table: str) -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_size_pretty(pg_total_relation_size(%s::regclass))", [table])
            return cursor.fetchone()[0]

    program = Program.objects.create(
        name="Bench", slug="bench", currency="EUR", points_lifetime_days=365
    )  # as tests/factories.ProgramFactory
    policy = health_settings_for(program)
    version = connection.pg_version // 10000
    print(f"database: {connection.vendor} {version}; DEBUG={settings.DEBUG}; cores={os.cpu_count()}")

    print(f"\ngenerating {args.members:,} members, {args.purchases:,} purchases over {args.years:g} years ...")
    start = time.perf_counter()
    steps = generate(
        program_id=program.pk, members=args.members, purchases=args.purchases, years=args.years, seed=args.seed
    )
    generation = time.perf_counter() - start
    for label, seconds in steps.items():
        print(f"  {label:<34}{seconds:>8.1f} s")
    print(f"  {'total':<34}{generation:>8.1f} s")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT member_id), min(occurred_at), max(occurred_at),"
            " count(*) FILTER (WHERE status = 'paid'), count(*) FILTER (WHERE status = 'partially_refunded'),"
            " count(*) FILTER (WHERE status = 'refunded') FROM loyalty_purchase WHERE program_id = %s",
            [program.pk],
        )
        count, buyers, first, last, paid, partial, refunded = cursor.fetchone()
        cursor.execute(
            "SELECT percentile_disc(ARRAY[0.5, 0.9, 0.99, 1.0]) WITHIN GROUP (ORDER BY n)"
            " FROM (SELECT count(*) AS n FROM loyalty_purchase WHERE program_id = %s GROUP BY member_id) c",
            [program.pk],
        )
        quantiles = cursor.fetchone()[0]
    members = args.members
    print(
        f"  {count:,} purchases ({paid:,} paid, {partial:,} partially refunded, {refunded:,} refunded) "
        f"by {buyers:,} of {members:,} members ({buyers / members:.0%}), {first:%Y-%m-%d}..{last:%Y-%m-%d}"
    )
    print(f"  purchases per buyer: median {quantiles[0]}, p90 {quantiles[1]}, p99 {quantiles[2]}, max {quantiles[3]}")
    print(f"  sizes: loyalty_purchase {size('loyalty_purchase')}, loyalty_member {size('loyalty_member')}")
    daily = max(round(args.purchases / (args.years * 365)), 1)

    results: list[tuple[str, float, int | None]] = []

    # 1. the weekly fit
    fit, fit_seconds, fit_breakdown = instrumented(fit_in_stages, program=program, now=NOW)
    results.append(("model fit (weekly, health_fit_model)", fit_seconds, None))
    loading = fit_breakdown.seconds(LOAD_BUYERS)
    print(
        f"\nmodel fit: {fit_seconds:.1f} s ({loading:.1f} s loading the buyers, "
        f"{fit_breakdown.seconds(FIT):.1f} s fitting with the backtest)"
        f"; {fit.status}, {fit.buyers:,} buyers, {fit.frequent_buyers:,} with 3+ days"
    )
    print("\n".join(fit_breakdown.lines(fit_seconds)))
    if fit.usable:
        spend = f"p={fit.gg_p:.2f} q={fit.gg_q:.2f} v={fit.gg_v:.2f}" if fit.gg_p is not None else "not fitted"
        print(f"  BG/NBD r={fit.r:.3f} alpha={fit.alpha:.2f} a={fit.a:.3f} b={fit.b:.3f}; Gamma-Gamma {spend}")
        if getattr(fit, "backtest_auc", None) is not None:
            print(
                f"  backtest over {fit.backtest_days} days: ROC AUC {fit.backtest_auc:.3f} "
                f"(recency alone {fit.backtest_recency_auc:.3f})"
            )
    else:
        print(f"  {fit.reason}")

    def refresh(label: str, now: datetime, **kwargs):
        run_, seconds, breakdown = instrumented(refresh_in_stages, program=program, now=now, **kwargs)
        changes = SegmentChange.objects.filter(program=program, changed_at=now).count()
        results.append((label, seconds, run_.members))
        print(f"\n{label} at {now:%Y-%m-%d %H:%M}: {seconds:.1f} s, {run_.members / seconds:,.0f} members/s")
        print(
            f"  members={run_.members:,} at_risk={run_.at_risk:,} (model {run_.flagged_by_model:,}, gap "
            f"{run_.flagged_by_gap:,}) eligible={run_.eligible:,} scored_by={run_.scored_by} chunks={run_.chunks} "
            f"segment changes={changes:,}"
        )
        print("  segments: " + ", ".join(f"{k} {v:,}" for k, v in run_.segment_counts.items()))
        print("\n".join(breakdown.lines(seconds)))
        return run_

    # 2. the first night (all inserts) and the next night (upserts after a day of purchases)
    first_run = refresh("refresh 1 (first night: inserts)", NOW)
    day2 = NOW + timedelta(days=1)
    add_day_of_purchases(program_id=program.pk, day=day2, count=daily)
    print(f"\n(+{daily:,} purchases during the next day)")
    second_run = refresh("refresh 2 (next night: upserts)", day2)

    # 3. the chunked run, as the refresh_health task and its chunk tasks do it
    day3 = NOW + timedelta(days=2)
    add_day_of_purchases(program_id=program.pk, day=day3, count=daily)
    clock = time.perf_counter()
    run_, ranges = health_refresh_start(program=program, now=day3, chunk_size=args.chunk_size)
    start_seconds = time.perf_counter() - clock
    print(f"\nchunked run at {day3:%Y-%m-%d} (+{daily:,} purchases), chunk size {args.chunk_size:,}:")
    print(f"  health_refresh_start (fit lookup, RFM cutpoints, id ranges): {start_seconds:.1f} s")
    print(f"  {'chunk':>7}{'member ids':>22}{'members':>10}{'seconds':>9}{'members/s':>11}")
    chunk_seconds = []
    for number, (lo, hi) in enumerate(ranges, start=1):
        clock = time.perf_counter()
        task_run = HealthRun.objects.select_related("program", "fit").get(pk=run_.pk)  # as refresh_health_chunk
        scored = health_refresh_range(run=task_run, lo=lo, hi=hi)
        health_chunk_done(run_id=run_.pk)  # the last one closes the run (health_refresh_finish)
        seconds = time.perf_counter() - clock
        chunk_seconds.append(seconds)
        print(f"  {number:>7}{f'{lo}..{hi}':>22}{scored:>10,}{seconds:>9.1f}{scored / seconds:>11,.0f}")
    chunked_total = start_seconds + sum(chunk_seconds)
    finished = HealthRun.objects.get(pk=run_.pk)
    print(
        f"  total {chunked_total:.1f} s one chunk after the other ({finished.members:,} members, "
        f"run closed by the last chunk: {finished.finished_at is not None})"
    )
    results.append((f"chunked run ({len(ranges)} chunks of {args.chunk_size:,})", chunked_total, finished.members))

    # 4. optional: profile one more refresh, EXPLAIN the aggregates
    if args.profile:
        profile_refresh(program, NOW + timedelta(days=3))

    # 5. the naive baseline, after the measurements (it overwrites the sample's health rows)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM loyalty_member WHERE program_id = %s ORDER BY random() LIMIT %s", [program.pk, args.sample]
        )
        sample = [row[0] for row in cursor.fetchall()]
    clock = time.perf_counter()
    naive_count = naive_refresh(member_ids=sample, program=program, now=day3, run=finished, policy=policy)
    naive_seconds = time.perf_counter() - clock
    naive_per_member = naive_seconds / naive_count
    sample_purchases = Purchase.objects.filter(member_id__in=sample).count()
    assert CustomerHealth.objects.filter(member_id__in=sample, computed_at=day3).count() == naive_count
    print(
        f"\nnaive ORM loop: {naive_count:,} random members ({sample_purchases:,} purchases) in {naive_seconds:.1f} s"
        f" = {naive_per_member * 1000:.2f} ms/member -> {naive_per_member * members / 60:.1f} min for {members:,}"
    )

    # summary
    ours = {label: seconds for label, seconds, _ in results}
    first_seconds = ours["refresh 1 (first night: inserts)"]
    second_seconds = ours["refresh 2 (next night: upserts)"]
    print(f"\nsummary: {members:,} members, {count:,} purchases, {os.cpu_count()} cores")
    print(f"  {'step':<44}{'seconds':>9}{'members/s':>12}{'ms/1000 members':>17}{'naive/ours':>12}")
    for label, seconds, scored in results:
        rate = f"{scored / seconds:>12,.0f}" if scored else f"{'':>12}"
        per = f"{seconds / scored * 1e6:>17.1f}" if scored else f"{'':>17}"
        ratio = f"{naive_per_member / (seconds / scored):>11.0f}x" if scored else f"{'':>12}"
        print(f"  {label:<44}{seconds:>9.1f}{rate}{per}{ratio}")
    print(
        f"  {f'naive ORM loop ({naive_count:,}-member sample)':<44}{naive_seconds:>9.1f}"
        f"{naive_count / naive_seconds:>12,.0f}{naive_per_member * 1e6:>17.1f}{'1x':>12}"
    )
    print(f"  {'naive, extrapolated to every member':<44}{naive_per_member * members:>9.0f}")
    print(
        f"  rows written per second: refresh 1 {first_run.members / first_seconds:,.0f}, "
        f"refresh 2 {second_run.members / second_seconds:,.0f}"
    )
    worst = max(first_seconds, second_seconds)
    verdict = "PASS" if worst < TARGET_SECONDS else "MISS"
    scale = "" if members >= TARGET_MEMBERS else f" (this run has {members:,} members: the target is for 1,000,000)"
    print(
        f"\ntarget: refresh of 1,000,000 members / 10,000,000 purchases < {TARGET_SECONDS:.0f} s: {verdict} "
        f"(first night {first_seconds:.1f} s, next night {second_seconds:.1f} s){scale}"
    )


def profile_refresh(program, now: datetime) -> None:
    """One refresh (in stages) under cProfile: the stages' cumulative time, the top functions, then
    EXPLAIN ANALYZE of the slowest statement of the start (the RFM cutpoints over all purchases) and
    of the load (a chunk's per-member aggregate)."""
    import cProfile
    import pstats

    from django.db import connection

    from loyalty.services import health

    breakdown = Breakdown()
    profiler = cProfile.Profile()
    with connection.execute_wrapper(breakdown):
        clock = time.perf_counter()
        profiler.enable()
        refresh_in_stages(program=program, now=now, breakdown=breakdown)
        profiler.disable()
        elapsed = time.perf_counter() - clock
    stats = pstats.Stats(profiler)
    print(f"\nprofiled refresh at {now:%Y-%m-%d}: {elapsed:.1f} s under cProfile (it slows Python code down)")
    # The service's public stage functions, found by their code objects (a rename fails here, loudly).
    stages = [health.health_cutpoints, health.health_load, health.health_score, health.health_store]
    stages.append(health.health_refresh_finish)
    codes = {(stage.__code__.co_filename, stage.__code__.co_firstlineno, stage.__name__): stage for stage in stages}
    print(f"  {'function (cumulative)':<52}{'seconds':>9}")
    for key, (_, _, _, cumulative, _) in sorted(stats.stats.items(), key=lambda item: -item[1][3]):
        if key in codes:
            print(f"  {key[2]:<52}{cumulative:>9.2f}")
    print("\n".join(breakdown.lines(elapsed)))
    print("  top 25 functions by own time:")
    stats.sort_stats("tottime").print_stats(25)

    for label in (START, LOAD):
        if label not in breakdown.slowest:
            continue
        _, sql, params = breakdown.slowest[label]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            plan = "\n".join(f"    {row[0]}" for row in cursor.fetchall())
        print(f"\n  EXPLAIN (ANALYZE, BUFFERS): the slowest statement of {label}\n{plan}")


if __name__ == "__main__":
    main()
