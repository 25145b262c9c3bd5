"""What the staff policy adds to a points adjustment: time ratio and SQL statements, one run.

Adjusts points in alternating rounds three ways through ``services.points_adjust``:

- ``system``: no staff user (``by=None``): no policy, the cost before the policy existed;
- ``manager``: a loyalty manager: the own-membership check only;
- ``agent``: a support agent: own membership, the per-adjustment limit, a row lock on the
  agent and the sum of their adjustments today. Before the run the agent has ``--history``
  adjustments on earlier days and ``--today`` earlier today: the daily sum reads a range of
  the ``loyalty_entry_staff_adjust`` index, so older history should cost nothing.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.staff_policy

It creates and drops its own throwaway database (``bench_staff_policy_<pid>``), DEBUG off.
"""

import argparse
import os
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("LOYALTY_LOG_LEVEL", "WARNING")
os.environ.setdefault("DEBUG", "False")

MODES = ("system", "manager", "agent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adjustments", type=int, default=1500, help="adjustments per mode")
    parser.add_argument("--history", type=int, default=20000, help="the agent's adjustments on earlier days")
    parser.add_argument("--today", type=int, default=100, help="the agent's adjustments earlier today")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--without-index", action="store_true", help="drop loyalty_entry_staff_adjust first")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    if connection.vendor != "sqlite":
        settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = f"bench_staff_policy_{os.getpid()}"
    if connection.vendor != "postgresql":
        print("note: DATABASE_URL is not PostgreSQL; the figures below are for", connection.vendor)
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        run(args)
    finally:
        teardown_databases(old_config, verbosity=0)


def run(args) -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from loyalty.conf import loyalty_settings
    from loyalty.models import Member, PointsEntry, Program
    from loyalty.services import member_enroll, points_adjust

    settings.LOYALTY = {**settings.LOYALTY, "SUPPORT_DAILY_ADJUST_LIMIT": 10**12}
    loyalty_settings.reload()
    User = get_user_model()
    program = Program.objects.create(name="Bench", slug="bench", currency="EUR", points_lifetime_days=365)
    members = [
        member_enroll(program=program, user=User.objects.create(username=f"c{n}", email=f"c{n}@example.com"))[0]
        for n in range(50)
    ]
    manager = User.objects.create(username="manager", email="m@example.com", is_staff=True, is_superuser=True)
    agent = User.objects.create(username="agent", email="a@example.com", is_staff=True)
    agent.user_permissions.add(*Permission.objects.filter(codename__in=["view_member", "change_member"]))
    agent = User.objects.get(pk=agent.pk)  # fresh permission cache
    by = {"system": None, "manager": manager, "agent": agent}

    # The agent's earlier adjustments, written in bulk (ledger rows only; balances follow).
    now = timezone.now()
    PointsEntry.objects.bulk_create(
        PointsEntry(
            program=program, member=members[n % 50], kind=PointsEntry.Kind.ADJUST, points=1, remaining=1,
            idempotency_key=f"history:{n}", description="earlier", created_by=agent,
            created_at=now if n < args.today else now - timedelta(days=1 + n % 300),
        )
        for n in range(args.history + args.today)
    )
    with connection.cursor() as cursor:
        if args.without_index:  # what the daily sum costs without it (for comparison)
            cursor.execute("DROP INDEX loyalty_entry_staff_adjust")
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")
    for member in members:
        total = PointsEntry.objects.filter(member=member).count()
        Member.objects.filter(pk=member.pk).update(balance=total, lifetime_points=total)

    timings = {mode: 0.0 for mode in MODES}
    statements = {}
    per_round = args.adjustments // args.rounds
    counter = 0
    for _round in range(args.rounds):
        for mode in MODES:
            start = time.perf_counter()
            for _ in range(per_round):
                counter += 1
                points_adjust(
                    member=members[counter % 50], points=1, reason="bench", by=by[mode], idempotency_key=f"b:{counter}"
                )
            timings[mode] += time.perf_counter() - start
    for mode in MODES:
        with CaptureQueriesContext(connection) as queries:
            counter += 1
            points_adjust(member=members[0], points=1, reason="bench", by=by[mode], idempotency_key=f"q:{counter}")
        statements[mode] = len(queries)

    done = per_round * args.rounds
    base = timings["system"] / done
    print(f"{done} adjustments per mode, {args.rounds} alternating rounds, {connection.vendor}; before the run "
          f"the agent had {args.history} adjustments on earlier days and {args.today} today"
          + (" (index dropped)" if args.without_index else ""))
    print(f"{'mode':<10} {'ms/adjustment':>14} {'ratio':>7} {'SQL statements':>15}")
    for mode in MODES:
        per = timings[mode] / done
        print(f"{mode:<10} {per * 1000:>14.2f} {per / base:>7.2f} {statements[mode]:>15}")


if __name__ == "__main__":
    main()
