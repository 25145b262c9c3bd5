"""Reward codes at checkout: what they cost, measured in one run.

1. A paid order event without codes and with one reward code in ``discount_codes`` (the
   redemption is marked used in the same savepoint): time per event and SQL statements.
2. The checkout API on loyalty's own codes: ``code_quote``, ``code_consume`` and
   ``code_release``, each in a transaction of its own, as a checkout request would run them.
3. Contention: several threads race to consume the same codes for different orders; every
   code must be used exactly once.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.reward_codes

It creates and drops its own throwaway database (``bench_reward_codes_<pid>``).
"""

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOYALTY_LOG_LEVEL", "WARNING")
os.environ.setdefault("DEBUG", "False")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))  # a throwaway database: any key will do


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="paid events per mode")
    parser.add_argument("--codes", type=int, default=500, help="codes quoted, consumed and released")
    parser.add_argument("--threads", type=int, default=4, help="threads racing for the same codes")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds for the paid events")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    from bench.throwaway import throwaway_database

    if connection.vendor != "postgresql":
        print("note: DATABASE_URL is not PostgreSQL; the figures below are for", connection.vendor)
    with throwaway_database("bench_reward_codes"):
        run(args)


def _per_ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:.2f}"


def run(args) -> None:
    from decimal import Decimal

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import close_old_connections, connection, transaction
    from django.test.utils import CaptureQueriesContext, override_settings
    from django.utils import timezone

    from loyalty.adapters.base import EventKind, OrderEvent
    from loyalty.exceptions import CodeRefused
    from loyalty.models import Member, Program, Redemption, Reward
    from loyalty.services import code_consume, code_quote, code_release, member_enroll, points_adjust, reward_redeem
    from loyalty.services.events import order_event_record

    program = Program.objects.create(name="Bench", slug="bench", currency="EUR", points_lifetime_days=365)
    reward = Reward.objects.create(
        program=program, name="5 off", kind="fixed", value=Decimal("5.00"), points_cost=10, personal_code=False
    )
    User = get_user_model()
    users = User.objects.bulk_create(User(username=f"b{i}", email=f"b{i}@example.com") for i in range(50))
    members = [member_enroll(program=program, user=u)[0] for u in users]
    for m in members:
        points_adjust(member=m, points=1_000_000, reason="bench", idempotency_key=f"bench:{m.pk}")

    def redeemed(n: int, mode: str) -> list[str]:
        with override_settings(LOYALTY={**settings.LOYALTY, "REWARD_CODES": mode}):
            member = members
            return [
                reward_redeem(
                    member=member[i % len(member)], reward=reward, idempotency_key=f"{mode}:{i}", notify=False
                ).code
                for i in range(n)
            ]

    # 1. paid events, without and with a code, in alternating rounds -------------------------
    per_round = max(args.events // args.rounds, 1)
    adapter_codes = redeemed(per_round * args.rounds, "adapter")
    timings = {"without": [], "with": []}
    statements = {"without": [], "with": []}
    counter = 0
    for _round in range(args.rounds):
        for mode in ("without", "with"):
            for _ in range(per_round):
                counter += 1
                user = users[counter % len(users)]
                codes = (adapter_codes.pop(),) if mode == "with" else ()
                event = OrderEvent(
                    kind=EventKind.PAID,
                    event_id=f"bench:{counter}:paid",
                    order_reference=f"B-{counter}",
                    amount=Decimal("42.00"),
                    currency="EUR",
                    occurred_at=timezone.now(),
                    user_id=user.pk,
                    email=user.email,
                    discount_codes=codes,
                )
                connection.queries_log.clear()  # the log keeps 9,000 queries; counts need it fresh
                with CaptureQueriesContext(connection) as queries:
                    start = time.perf_counter()
                    with transaction.atomic():
                        order_event_record(event)
                    timings[mode].append(time.perf_counter() - start)
                statements[mode].append(len(queries))
    used = Redemption.objects.filter(status=Redemption.Status.USED).count()
    print(f"\n1. Paid order events ({per_round * args.rounds} per mode, {args.rounds} alternating rounds, median)")
    print("| event | ms per event | SQL statements |")
    print("| --- | ---: | ---: |")
    for mode, label in (("without", "no discount code"), ("with", "one reward code (marked used)")):
        print(f"| {label} | {_per_ms(timings[mode])} | {statistics.median(statements[mode]):.0f} |")
    ratio = statistics.median(timings["with"]) / statistics.median(timings["without"])
    print(f"ratio with/without: {ratio:.2f}; redemptions marked used: {used}")

    # 2. the checkout API on loyalty's own codes ---------------------------------------------
    own = redeemed(args.codes, "loyalty")
    quote_t, consume_t, release_t, consume_q = [], [], [], []
    for i, code in enumerate(own):
        start = time.perf_counter()
        code_quote(code=code, order_total=Decimal("30.00"), currency="EUR")
        quote_t.append(time.perf_counter() - start)
        connection.queries_log.clear()
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            with transaction.atomic():
                code_consume(code=code, order_reference=f"C-{i}", order_total=Decimal("30.00"), currency="EUR")
            consume_t.append(time.perf_counter() - start)
        consume_q.append(len(queries))
        start = time.perf_counter()
        with transaction.atomic():
            code_release(order_reference=f"C-{i}")
        release_t.append(time.perf_counter() - start)
    print(f"\n2. Checkout API, {args.codes} codes, each call in its own transaction (median)")
    print("| call | ms | SQL statements |")
    print("| --- | ---: | ---: |")
    print(f"| code_quote | {_per_ms(quote_t)} | 1 |")
    print(f"| code_consume | {_per_ms(consume_t)} | {statistics.median(consume_q):.0f} (incl. savepoint) |")
    print(f"| code_release | {_per_ms(release_t)} | |")

    # 3. contention: every thread tries every code ------------------------------------------
    outcomes: dict[str, int] = {"ok": 0, "code_used": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(args.threads)

    def racer(n: int) -> None:
        barrier.wait()
        try:
            for code in own:
                try:
                    with transaction.atomic():
                        code_consume(
                            code=code, order_reference=f"R-{n}-{code}", order_total=Decimal("30"), currency="EUR"
                        )
                    key = "ok"
                except CodeRefused as refusal:
                    key = refusal.code
                with lock:
                    outcomes[key] = outcomes.get(key, 0) + 1
        finally:
            close_old_connections()

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(args.threads)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    attempts = args.threads * len(own)
    print(f"\n3. {args.threads} threads each try to consume the same {len(own)} codes for their own orders")
    print("| attempts | used once | refused code_used | attempts/s |")
    print("| ---: | ---: | ---: | ---: |")
    print(f"| {attempts} | {outcomes['ok']} | {outcomes.get('code_used', 0)} | {attempts / elapsed:.0f} |")
    assert outcomes["ok"] == len(own), outcomes
    assert Member.objects.count() == len(members)


if __name__ == "__main__":
    main()
