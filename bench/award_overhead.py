"""What loyalty adds to paying an order: time ratio and SQL statements, measured in one run.

Pays orders in alternating rounds with loyalty disconnected, connected with inline
processing (the default) and connected with deferred processing (inbox row only; the
beat task applies it afterwards, as a worker would), two ways:

- ``service``: the shop's bare ``mark_paid`` (row lock, update, commit; ~3 ms), each in its
  own transaction as a payment callback would be;
- ``request``: what a customer waits for: POST "Pay now" on the payment page and GET the
  order confirmation it redirects to, through Django's full request stack.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.award_overhead

Then it measures the deferred worker: a backlog of ``--backlog`` pending paid events (20,000 by
default, the inbox rows ``order_event_record`` writes in deferred mode, for the same customers)
drained by ``events_process_pending`` in one process, as one worker runs it. Finally it checks
that every order earned exactly once and runs ``loyalty_check_ledger`` on its database.

It creates and drops its own throwaway database (``bench_award_overhead_<pid>``) and runs with DEBUG off,
as production does. Timings on a shared machine vary from run to run: read the ratios, which are
measured in one run. Targets (issue #16): inline at most 2.0 x bare ``mark_paid``, at most 1.10 x the
request, at most 5 added statements; deferred at least 1,000 events per second per worker.
The last two lines are machine-readable::

    award_overhead: inline <R> x mark_paid, <Q> x request, <S> statements
    award_overhead: deferred apply <N> events/s
"""

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The project has no secret key default without DEBUG (on here it would slow every query down).
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
# The "request" mode drives the pages over plain HTTP through Django's test client.
for name in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
    os.environ.setdefault(name, "False")
os.environ.setdefault("LOYALTY_LOG_LEVEL", "WARNING")
os.environ.setdefault("DEBUG", "False")

MODES = ("without", "inline", "deferred")
LABELS = {"without": "without loyalty", "inline": "inline (default)", "deferred": "deferred (inbox row only)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=2000, help="orders paid per mode through mark_paid")
    parser.add_argument("--requests", type=int, default=400, help="orders paid per mode through the web pages")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per mode")
    parser.add_argument("--backlog", type=int, default=20000, help="pending events the deferred worker drains")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    if connection.vendor != "sqlite":  # its own database, never the test suite's test_<name>
        settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = f"bench_award_overhead_{os.getpid()}"

    if connection.vendor != "postgresql":
        print("note: DATABASE_URL is not PostgreSQL; the figures below are for", connection.vendor)
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        run(args)
    finally:
        teardown_databases(old_config, verbosity=0)


def run(args) -> None:
    from decimal import Decimal

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from loyalty.conf import loyalty_settings
    from loyalty.models import OrderEvent, PointsEntry, Program
    from loyalty.receivers import connect_adapter, disconnect_adapter
    from loyalty.services import events_process_pending, member_enroll
    from shop import services as shop
    from shop.models import Product

    program = Program.objects.create(name="Bench", slug="bench", currency="EUR", points_lifetime_days=365)
    product = Product.objects.create(name="Bench product", slug="bench", price=Decimal("19.90"))
    User = get_user_model()
    password = make_password("x")
    users = User.objects.bulk_create(
        User(username=f"b{n}@example.com", email=f"b{n}@example.com", password=password) for n in range(args.customers)
    )
    for user in users:
        member_enroll(program=program, user=user)
    client = Client()
    client.force_login(users[0])

    statements = {"n": 0}

    def count(execute, sql, params, many, context):
        statements["n"] += 1
        return execute(sql, params, many, context)

    def pay_by_service(orders) -> None:
        for order in orders:
            shop.mark_paid(order=order)

    def pay_by_request(orders) -> None:
        for order in orders:
            response = client.post(reverse("shop:order_pay", args=[order.number]), {"action": "pay"}, follow=True)
            assert response.status_code == 200, response.status_code

    def measure(driver, total: int, one_customer: bool):
        per_round = max(total // args.rounds, 1)
        elapsed, queries, paid = dict.fromkeys(MODES, 0.0), dict.fromkeys(MODES, 0), dict.fromkeys(MODES, 0)
        for _ in range(args.rounds):
            for mode in MODES:
                orders = [
                    shop.place_order(items={product.pk: 1 + n % 3}, user=users[0 if one_customer else n % len(users)])
                    for n in range(per_round)
                ]
                disconnect_adapter() if mode == "without" else connect_adapter()
                processing = "deferred" if mode == "deferred" else "inline"
                settings.LOYALTY = {**settings.LOYALTY, "EVENT_PROCESSING": processing}
                loyalty_settings.reload()
                statements["n"] = 0
                with connection.execute_wrapper(count):
                    start = time.perf_counter()
                    driver(orders)
                    elapsed[mode] += time.perf_counter() - start
                queries[mode] += statements["n"]
                paid[mode] += len(orders)
        connect_adapter()
        return elapsed, queries, paid

    def report(title: str, elapsed, queries, paid) -> tuple[float, float]:
        def per(mode):
            return elapsed[mode] / paid[mode] * 1000, queries[mode] / paid[mode]

        base_ms, base_q = per("without")
        print(f"\n{title}: {paid['without']} orders per mode, {args.rounds} alternating rounds")
        print(f"  {'mode':<28}{'ms/order':>10}{'statements':>12}{'ratio':>8}{'added stmts':>13}")
        for mode in MODES:
            ms, q = per(mode)
            print(f"  {LABELS[mode]:<28}{ms:>10.2f}{q:>12.1f}{ms / base_ms:>8.2f}{q - base_q:>13.1f}")
        ms, q = per("inline")
        return ms / base_ms, q - base_q

    print(f"database: {connection.vendor}; DEBUG={settings.DEBUG}")
    service = measure(pay_by_service, args.orders, one_customer=False)
    inline_ratio, inline_statements = report("shop.services.mark_paid (payment callback)", *service)
    request_ratio = float("nan")
    if args.requests:
        request = measure(pay_by_request, args.requests, one_customer=True)
        request_ratio, _ = report("POST 'Pay now' + GET the confirmation page (what the customer waits for)", *request)

    pending = OrderEvent.objects.filter(status=OrderEvent.Status.PENDING).count()
    start = time.perf_counter()
    while events_process_pending():
        pass
    worker_ms = (time.perf_counter() - start) / max(pending, 1) * 1000
    print(f"\ndeferred: the beat task then applied the {pending} events of the run at {worker_ms:.2f} ms each")

    rate = backlog(args.backlog, users)

    expected = sum(result[2][mode] for result in [service] + ([request] if args.requests else []) for mode in MODES)
    expected -= sum(result[2]["without"] for result in [service] + ([request] if args.requests else []))
    expected += args.backlog
    earned = PointsEntry.objects.count()
    assert earned == expected, f"{earned} earn rows for {expected} orders paid with loyalty"
    assert not OrderEvent.objects.exclude(status=OrderEvent.Status.PROCESSED).exists(), "events left unprocessed"
    print(f"every order paid with loyalty earned exactly once ({earned} ledger rows)")
    call_command("loyalty_check_ledger")
    print(
        f"award_overhead: inline {inline_ratio:.2f} x mark_paid, {request_ratio:.2f} x request, "
        f"{inline_statements:.1f} statements"
    )
    print(f"award_overhead: deferred apply {rate:.0f} events/s")


def backlog(size: int, users) -> float:
    """Drain ``size`` pending paid events (inbox rows as deferred recording writes them) in this
    process; events per second."""
    from decimal import Decimal

    from django.db import transaction
    from django.utils import timezone

    from loyalty.adapters.base import EventKind
    from loyalty.adapters.base import OrderEvent as Event
    from loyalty.models import OrderEvent
    from loyalty.services import events_process_pending

    if not size:
        return float("nan")
    now = timezone.now()
    rows = []
    for n in range(size):
        user = users[n % len(users)]
        event = Event(
            kind=EventKind.PAID,
            event_id=f"backlog:{n}:paid",
            order_reference=f"BL-{n:06d}",
            amount=Decimal("19.90") * (1 + n % 3),
            currency="EUR",
            occurred_at=now,
            user_id=user.pk,
            email=user.email,
        )
        rows.append(
            OrderEvent(
                event_key=event.event_id,
                kind=event.kind,
                order_reference=event.order_reference,
                payload=event.to_payload(),
                status=OrderEvent.Status.PENDING,
                received_at=now,
            )
        )
    with transaction.atomic():
        OrderEvent.objects.bulk_create(rows, batch_size=2000)
    start = time.perf_counter()
    applied = 0
    while counts := events_process_pending():
        applied += sum(counts.values())
    elapsed = time.perf_counter() - start
    rate = applied / elapsed
    print(
        f"deferred: a backlog of {size} pending events drained by one process in {elapsed:.2f} s ({rate:.0f} events/s)"
    )
    return rate


if __name__ == "__main__":
    main()
