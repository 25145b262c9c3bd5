"""What loyalty adds to paying an order: time ratio and queries per order, measured in one run.

Pays N orders through the shop's own ``mark_paid`` (each its own transaction, as a payment
callback would), in alternating rounds: loyalty disconnected, connected with inline
processing (the default), and connected with deferred processing (inbox row only; the
beat task applies it afterwards, as a worker would).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.award_overhead --orders 2000

It creates and drops its own throwaway database (``test_<name>``) and runs with DEBUG off,
as production does. Targets: ratio <= 1.3, at most 8 added queries per order.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOYALTY_LOG_LEVEL", "WARNING")
os.environ.setdefault("DEBUG", "False")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=2000, help="orders paid in each mode")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per mode")
    args = parser.parse_args()

    import django

    django.setup()
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    if connection.vendor != "postgresql":
        print("note: DATABASE_URL is not PostgreSQL; the figures below are for", connection.vendor)
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        from loyalty.models import PointsEntry, Program
        from loyalty.receivers import connect_adapter, disconnect_adapter
        from loyalty.services import member_enroll
        from shop import services as shop
        from shop.models import Product

        program = Program.objects.create(name="Bench", slug="bench", currency="EUR", points_lifetime_days=365)
        product = Product.objects.create(name="Bench product", slug="bench", price=Decimal("19.90"))
        password = make_password("x")
        users = get_user_model().objects.bulk_create(
            get_user_model()(username=f"b{n}@example.com", email=f"b{n}@example.com", password=password)
            for n in range(args.customers)
        )
        for user in users:
            member_enroll(program=program, user=user)

        def make_orders(count: int):
            return [
                shop.place_order(items={product.pk: 1 + n % 3}, user=users[n % len(users)]) for n in range(count)
            ]

        from django.conf import settings

        from loyalty.conf import loyalty_settings
        from loyalty.models import OrderEvent
        from loyalty.services import events_process_pending

        statements = {"n": 0}

        def count(execute, sql, params, many, context):
            statements["n"] += 1
            return execute(sql, params, many, context)

        modes = ("without", "inline", "deferred")
        per_round = max(args.orders // args.rounds, 1)
        elapsed = dict.fromkeys(modes, 0.0)
        queries = dict.fromkeys(modes, 0)
        paid = dict.fromkeys(modes, 0)
        for _ in range(args.rounds):
            for mode in modes:
                orders = make_orders(per_round)
                disconnect_adapter() if mode == "without" else connect_adapter()
                processing = "deferred" if mode == "deferred" else "inline"
                settings.LOYALTY = {**settings.LOYALTY, "EVENT_PROCESSING": processing}
                loyalty_settings.reload()
                statements["n"] = 0
                with connection.execute_wrapper(count):
                    start = time.perf_counter()
                    for order in orders:
                        shop.mark_paid(order=order)
                    elapsed[mode] += time.perf_counter() - start
                queries[mode] += statements["n"]
                paid[mode] += len(orders)
        connect_adapter()

        pending = OrderEvent.objects.filter(status=OrderEvent.Status.PENDING).count()
        start = time.perf_counter()
        while events_process_pending():
            pass
        worker_ms = (time.perf_counter() - start) / max(pending, 1) * 1000
        earned = PointsEntry.objects.count()
        assert earned == paid["inline"] + paid["deferred"], f"{earned} earn rows for {paid} orders"

        def per(mode):
            return elapsed[mode] / paid[mode] * 1000, queries[mode] / paid[mode]

        base_ms, base_q = per("without")
        print(f"database: {connection.vendor}")
        print(f"orders paid per mode: {paid['without']} ({args.rounds} alternating rounds); all earned exactly once")
        print(f"{'mode':<28}{'ms/order':>10}{'statements':>12}{'ratio':>8}{'added stmts':>13}")
        print(f"{'without loyalty':<28}{base_ms:>10.2f}{base_q:>12.1f}{1:>8.2f}{0:>13.1f}")
        for mode, label in (("inline", "inline (default)"), ("deferred", "deferred (inbox row only)")):
            ms, q = per(mode)
            print(f"{label:<28}{ms:>10.2f}{q:>12.1f}{ms / base_ms:>8.2f}{q - base_q:>13.1f}")
        print(f"deferred: the beat task then applied {pending} events at {worker_ms:.2f} ms each (outside checkout)")
        print("targets: ratio <= 1.3, added statements <= 8 (statements include SAVEPOINT/RELEASE, BEGIN not counted)")
    finally:
        teardown_databases(old_config, verbosity=0)


if __name__ == "__main__":
    main()
