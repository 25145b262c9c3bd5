"""Backfill of past orders at scale: time with and without points, orders/s, measured in one run.

Generates ``--orders`` historical orders (default 1,000,000) as ``HistoricalOrder`` objects from a
generator (no shop rows: the service is fed directly, as an adapter's ``iter_historical_orders``
would), bought by ``--customers`` users (default 100,000, created with one ``INSERT ... SELECT
generate_series``) and ~30% guests, over 3 years in payment order; 92% paid, 3% partially refunded,
3% refunded, 2% cancelled after payment. Then, each timed on its own with ``time.perf_counter()``:

1. ``orders_backfill(award_points=True)`` into programme "points": purchases, enrolment of every
   customer, one earn lot per kept member purchase, member totals;
2. ``orders_backfill(award_points=False)`` into programme "facts": purchases and enrolment only;
3. the first run again (a resumed or repeated backfill: every order is skipped);

and checks ``balance == sum(ledger)`` for every member afterwards.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.backfill
    DATABASE_URL=... .venv/bin/python -m bench.backfill --orders 100000

It creates and drops its own throwaway database (``bench_backfill_<pid>``; PostgreSQL only) and runs
with DEBUG off, as production does. Target: 1,000,000 historical orders in under 5 minutes.
"""

import argparse
import os
import secrets
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throwaway import throwaway_database

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The project has no secret key default without DEBUG (on here it would slow every query down).
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("LOYALTY_LOG_LEVEL", "WARNING")
os.environ.setdefault("DEBUG", "False")

TARGET_SECONDS = 300.0
TARGET_ORDERS = 1_000_000
START = datetime(2022, 6, 1, tzinfo=timezone.utc)
YEARS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=TARGET_ORDERS)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        parser.error("the target is for PostgreSQL: set DATABASE_URL=postgres://...")
    with throwaway_database("bench_backfill"):
        run(args)


def historical_orders(*, count: int, user_ids: list[int], seed: int):
    """``count`` orders in payment order, deterministic for a seed."""
    import random
    from decimal import Decimal

    from loyalty.adapters.base import HistoricalOrder

    rng = random.Random(seed)
    step = YEARS * 365 * 86400 / count
    for n in range(count):
        amount = Decimal(int(rng.lognormvariate(3.6, 0.6) * 100)) / 100 + Decimal("1.00")
        draw = rng.random()
        if draw < 0.92:
            status, refunded = "paid", Decimal("0.00")
        elif draw < 0.95:
            status, refunded = "partially_refunded", (amount * Decimal("0.3")).quantize(Decimal("0.01"))
        elif draw < 0.98:
            status, refunded = "refunded", amount
        else:
            status, refunded = "cancelled", Decimal("0.00")
        guest = rng.random() < 0.3
        yield HistoricalOrder(
            reference=f"H{n:09d}",
            amount=amount,
            refunded_amount=refunded,
            currency="EUR",
            paid_at=START + timedelta(seconds=n * step),
            user_id=None if guest else rng.choice(user_ids),
            email=f"guest{n}@example.com" if guest else "",
            status=status,
        )


def run(args) -> None:
    from django.db import connection
    from django.db.models import Count, Sum

    from loyalty.models import Member, PointsEntry, Program, Purchase
    from loyalty.selectors import ledger_mismatches
    from loyalty.services.backfill import orders_backfill

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                                   is_staff, is_active, date_joined)
            SELECT '!', false, 'bench' || n, '', '', 'bench' || n || '@example.com', false, true, now()
              FROM generate_series(1, %s) AS n
            """,
            [args.customers],
        )
        cursor.execute("SELECT id FROM auth_user ORDER BY id")
        user_ids = [row[0] for row in cursor.fetchall()]
    points = Program.objects.create(name="Points", slug="points", currency="EUR", points_lifetime_days=365)
    facts = Program.objects.create(name="Facts", slug="facts", currency="EUR", points_lifetime_days=365)
    print(
        f"backfill of {args.orders:,} historical orders by {args.customers:,} customers (+~30% guest orders), "
        f"chunks of {args.chunk_size:,}, {os.cpu_count()} cores, PostgreSQL"
    )

    def timed(label: str, program, award: bool):
        slowest = [0.0]

        def progress(chunk):
            slowest[0] = max(slowest[0], chunk.seconds)

        orders = historical_orders(count=args.orders, user_ids=user_ids, seed=args.seed)
        clock = time.perf_counter()
        result = orders_backfill(
            orders=orders, program=program, award_points=award, chunk_size=args.chunk_size, progress=progress
        )
        seconds = time.perf_counter() - clock
        print(
            f"\n{label}: {seconds:.1f} s, {result.orders / seconds:,.0f} orders/s "
            f"(slowest chunk {slowest[0]:.2f} s, {result.chunks} chunks)\n"
            f"  imported {result.imported:,}, skipped {result.skipped:,}, enrolled {result.enrolled:,}, "
            f"points {result.points:,} in {result.entries:,} ledger entries"
        )
        return seconds, result

    # generating the objects alone, to tell the service's time from the generator's
    clock = time.perf_counter()
    for _ in historical_orders(count=args.orders, user_ids=user_ids, seed=args.seed):
        pass
    generation = time.perf_counter() - clock
    print(f"\ngenerating {args.orders:,} HistoricalOrder objects alone: {generation:.1f} s")

    with_points, _ = timed("1. award_points=True", points, True)
    without_points, _ = timed("2. award_points=False", facts, False)
    rerun, rerun_result = timed("3. rerun of 1 (everything recorded already)", points, True)
    assert rerun_result.imported == 0

    mismatches = ledger_mismatches().count()
    totals = Member.objects.filter(program=points).aggregate(balance=Sum("balance"), orders=Sum("orders_count"))
    ledger = PointsEntry.objects.filter(program=points).aggregate(points=Sum("points"), entries=Count("id"))
    purchases = Purchase.objects.filter(program=points).count()
    print(
        f"\nchecks: {purchases:,} purchases; member balances {totals['balance']:,} = ledger {ledger['points']:,} "
        f"({ledger['entries']:,} entries); members with a ledger mismatch: {mismatches}"
    )
    assert mismatches == 0 and totals["balance"] == ledger["points"]

    print(f"\nsummary ({args.orders:,} orders)")
    print(f"  {'run':<46}{'seconds':>9}{'orders/s':>11}")
    for label, seconds in (
        ("award_points=True", with_points),
        ("award_points=False", without_points),
        ("rerun (all skipped)", rerun),
    ):
        print(f"  {label:<46}{seconds:>9.1f}{args.orders / seconds:>11,.0f}")
    verdict = "PASS" if with_points < TARGET_SECONDS else "MISS"
    scale = (
        "" if args.orders >= TARGET_ORDERS else f" (this run has {args.orders:,} orders: the target is for 1,000,000)"
    )
    projected = with_points * TARGET_ORDERS / args.orders
    print(
        f"\ntarget: 1,000,000 historical orders < {TARGET_SECONDS:.0f} s (with points): {verdict} "
        f"({with_points:.1f} s; {projected:.0f} s per 1,000,000 at this rate){scale}"
    )


if __name__ == "__main__":
    main()
