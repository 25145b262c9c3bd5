"""The lean award path: a paid order in one statement on PostgreSQL, the same rows as the
portable (ORM) path, and a statement budget per award."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from loyalty.adapters.base import EventKind
from loyalty.models import (
    EarningRule,
    Member,
    Message,
    OrderEvent,
    OutboundEmail,
    PendingPoints,
    PointsEntry,
    Program,
    Purchase,
    Referral,
    Tier,
    TierChange,
)
from loyalty.services import award, member_enroll, order_event_record, points_adjust
from tests.factories import CampaignFactory, UserFactory, order_event

pytestmark = pytest.mark.django_db

T0 = timezone.now().replace(microsecond=0) - timedelta(days=30)


def at(days: float) -> timezone.datetime:
    return T0 + timedelta(days=days)


def enrolled(program, email: str, **fields) -> Member:
    member = member_enroll(program=program, user=UserFactory(email=email), at=at(-100))[0]
    if fields:
        Member.objects.filter(pk=member.pk).update(**fields)
    return member


def pay(user, reference: str, amount: str, day: float, **kwargs):
    return order_event_record(order_event(reference=reference, amount=amount, user=user, at=at(day), **kwargs))


def statements(fn) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return [q["sql"].split()[0].upper() for q in ctx.captured_queries]


@pytest.fixture
def portable(monkeypatch):
    """Every database takes the ORM path (what SQLite and others always do)."""
    monkeypatch.setattr(award, "FAST_VENDORS", frozenset())


# --- what the rows look like, without ids and clock times ---------------------------------------


def snapshot() -> dict[str, list]:
    def email(member_id):
        return Member.objects.get(pk=member_id).user.email if member_id else None

    def ref(purchase_id):
        return Purchase.objects.get(pk=purchase_id).order_reference if purchase_id else None

    return {
        "members": sorted(
            (m.user.email, m.balance, m.lifetime_points, m.pending_points, m.orders_count, m.last_purchase_at)
            + (m.tier.name if m.tier else None, m.tier_since)
            for m in Member.objects.select_related("user", "tier")
        ),
        "purchases": sorted(
            (p.order_reference, email(p.member_id), p.email, p.amount, p.refunded_amount, p.currency, p.status)
            + (p.points_earned, p.points_reversed, p.occurred_at, p.category)
            for p in Purchase.objects.all()
        ),
        "entries": sorted(
            (e.idempotency_key.replace(str(e.member_id), "<m>"), email(e.member_id), e.kind, e.points, e.remaining)
            + (e.expires_at, e.reference, e.description, ref(e.purchase_id), e.kind == "adjust" or e.created_at)
            for e in PointsEntry.objects.all()
        ),
        "pending": sorted(
            (ref(p.purchase_id), email(p.member_id), p.points, p.approve_at, p.status)
            for p in PendingPoints.objects.all()
        ),
        "inbox": sorted(
            (e.event_key, e.kind, e.order_reference, str(e.payload), e.status, e.attempts, e.last_error)
            for e in OrderEvent.objects.all()
        ),
        "tier_changes": sorted(
            (email(c.member_id), str(c.from_tier), str(c.to_tier), c.reason, c.note, c.created_at)
            for c in TierChange.objects.all()
        ),
        "messages": sorted(
            (m.campaign.name, email(m.member_id), m.converted_at, ref(m.conversion_purchase_id), m.revenue)
            for m in Message.objects.select_related("campaign")
        ),
        "emails": sorted(
            (e.kind, email(e.member_id), e.key.split(":")[0], str(sorted(e.context)))
            for e in OutboundEmail.objects.all()
        ),
        "referrals": sorted((email(r.friend_id), r.status, r.note) for r in Referral.objects.all()),
    }


def both_paths(play, monkeypatch) -> tuple[dict, dict]:
    """Play the same orders on the one-statement path and on the portable path."""
    results = []
    for vendors in (award.FAST_VENDORS, frozenset()):
        monkeypatch.setattr(award, "FAST_VENDORS", vendors)
        with transaction.atomic():
            play()
            results.append(snapshot())
            call_command("loyalty_check_ledger", stdout=StringIO())
            transaction.set_rollback(True)
    return results[0], results[1]


# --- the two paths write the same rows -------------------------------------------------------------


def test_returning_members_guests_duplicates_and_second_payments(postgres_only, program, monkeypatch):
    anna = enrolled(program, "anna@example.com").user
    ben = enrolled(program, "ben@example.com").user

    def play():
        for n, amount in enumerate(["19.90", "0.00", "120.55", "7.01"]):
            pay(anna, f"A-{n}", amount, day=n)
        pay(anna, "A-1", "0.00", day=1)  # the same event again
        pay(anna, "A-2", "120.55", day=2, event_id="second-delivery-of-A-2")  # paid twice
        pay(None, "G-1", "33.00", day=3)  # a guest
        pay(ben, "B-1", "50.00", day=4)
        points_adjust(member=Member.objects.get(user=ben), points=-40, reason="spent", idempotency_key="spent")
        order_event_record(order_event(EventKind.CANCELLED, reference="B-1", amount="50.00", user=ben, at=at(5)))
        pay(ben, "B-2", "30.00", day=6)  # pays back a negative balance first
        pay(ben, "B-3", "30.00", day=7)

    fast, portable = both_paths(play, monkeypatch)
    assert fast == portable
    assert ("A-2", "anna@example.com") in [(p[0], p[1]) for p in fast["purchases"]]
    assert [m[1] for m in fast["members"]] == [146, 20]  # anna, ben: -40 + 30 + 30


def test_tiers_multipliers_campaigns_and_first_orders(postgres_only, program, monkeypatch):
    silver = Tier.objects.create(
        program=program, name="Silver", rank=2, threshold=Decimal("50"), qualifies_by="spend",
        multiplier=Decimal("1.25"), entry_bonus_points=10,
    )  # fmt: skip
    Tier.objects.create(
        program=program, name="Gold", rank=3, threshold=Decimal("200"), qualifies_by="points", window_days=30,
        multiplier=Decimal("1.5"),
    )  # fmt: skip
    EarningRule.objects.create(
        program=program, name="Double days", kind=EarningRule.Kind.MULTIPLIER, multiplier=Decimal("2"),
        active_from=at(10), active_until=at(12), min_order_amount=Decimal("20"),
    )  # fmt: skip
    EarningRule.objects.create(program=program, name="Welcome", kind=EarningRule.Kind.FIRST_PURCHASE, points=25)
    clara = enrolled(program, "clara@example.com").user
    dora = enrolled(program, "dora@example.com", orders_count=3, tier=silver, tier_since=at(-50)).user

    def play():
        pay(clara, "C-1", "30.00", day=0)  # first order: the first-purchase bonus
        pay(clara, "C-2", "19.99", day=1)  # below Silver
        pay(clara, "C-3", "0.01", day=2)  # exactly Silver: TierChange, entry bonus
        pay(clara, "C-4", "40.00", day=11)  # Silver x double days
        pay(clara, "C-5", "10.00", day=11.5)  # under the campaign's minimum
        pay(dora, "D-1", "99.99", day=3)  # Silver member: 1.25
        pay(dora, "D-2", "70.00", day=4)  # reaches Gold (124 + 87 points in 30 days)
        pay(dora, "D-3", "15.00", day=40)  # Gold, the window moved on

    fast, portable = both_paths(play, monkeypatch)
    assert fast == portable
    assert [(c[0], c[2]) for c in fast["tier_changes"]] == [
        ("clara@example.com", "Silver"),
        ("dora@example.com", "Gold"),
    ]


def test_pending_points_attribution_and_points_emails(postgres_only, program, monkeypatch):
    Program.objects.filter(pk=program.pk).update(pending_days=14)
    program.refresh_from_db()
    program.email_points_earned = True
    program.save()
    campaign = CampaignFactory(program=program, attribution_days=14)
    eva = enrolled(program, "eva@example.com", orders_count=1, marketing_consent=True)
    Message.objects.create(
        campaign=campaign, program=program, member=eva, cycle="c1", status=Message.Status.SENT,
        created_at=at(-2), sent_at=at(-1),
    )  # fmt: skip
    fynn = enrolled(program, "fynn@example.com", orders_count=2, marketing_consent=True).user

    def play():
        pay(eva.user, "E-1", "45.00", day=0)  # converts the campaign message; its approval is over
        pay(eva.user, "E-2", "12.00", day=29.5)  # pending: its period is not over
        pay(fynn, "F-1", "80.00", day=1)  # paid long enough ago: credited at once, emailed
        pay(fynn, "F-2", "0.50", day=2)  # 0 points

    fast, portable = both_paths(play, monkeypatch)
    assert fast == portable
    assert [m[3] for m in fast["messages"]] == ["E-1"]
    assert [p[0] for p in fast["pending"]] == ["E-2"]
    assert [e[0] for e in fast["emails"]].count("points_earned") == 2  # E-1, F-1


def test_a_pending_referral_completes_on_the_first_order(postgres_only, program, monkeypatch):
    EarningRule.objects.create(program=program, name="Friend", kind=EarningRule.Kind.REFEREE, points=30)
    referrer = enrolled(program, "gina@example.com")
    friend = enrolled(program, "hugo@example.com")
    Referral.objects.create(program=program, referrer=referrer, friend=friend, created_at=at(-1))

    def play():
        pay(friend.user, "H-1", "10.00", day=0)
        pay(friend.user, "H-2", "10.00", day=1)

    fast, portable = both_paths(play, monkeypatch)
    assert fast == portable
    assert fast["referrals"] == [("hugo@example.com", Referral.Status.REWARDED, "")]


# --- the statement budget ---------------------------------------------------------------------------


@pytest.fixture
def returning(program):
    """A member whose programme the process knows already (as after the first order)."""
    member = enrolled(program, "ida@example.com", orders_count=4)
    pay(member.user, "WARM-1", "1.00", day=0)
    return member


@pytest.mark.parametrize("setup", ["plain", "tiers", "pending", "top tier"])
def test_a_returning_members_payment_is_one_statement_in_its_savepoint(postgres_only, program, returning, setup):
    if setup == "tiers":
        Tier.objects.create(program=program, name="Silver", rank=2, threshold=Decimal("5000"), qualifies_by="spend")
    if setup == "top tier":
        gold = Tier.objects.create(program=program, name="Gold", rank=3, threshold=Decimal("1"), qualifies_by="spend")
        Member.objects.filter(pk=returning.pk).update(tier=gold)
    if setup == "pending":
        program.pending_days = 14
        program.save()
    if setup != "plain":
        pay(returning.user, "WARM-2", "1.00", day=1)  # the process learns the new configuration

    sql = statements(lambda: pay(returning.user, "R-1", "25.00", day=29.9))

    assert sql == ["SAVEPOINT", "SELECT", "RELEASE"]
    member = Member.objects.get(pk=returning.pk)
    assert (member.balance, member.pending_points) == (
        (26, 0) if setup == "plain" else (2, 25) if setup == "pending" else (27, 0)
    )
    assert OrderEvent.objects.get(order_reference="R-1").status == OrderEvent.Status.PROCESSED


def test_the_statement_is_a_call_of_the_award_function(postgres_only, program, returning):
    with CaptureQueriesContext(connection) as ctx:
        pay(returning.user, "R-1", "25.00", day=1)

    (call,) = [q["sql"] for q in ctx.captured_queries if award.FUNCTION in q["sql"]]
    assert call.startswith("SELECT") and len(call) < 4096  # short: the driver parses it once, not per call
    assert PointsEntry.objects.get(reference="R-1").points == 25


@pytest.mark.django_db(transaction=True)
def test_a_payment_that_waited_for_the_members_lock_counts_the_one_before_it(postgres_only, program, returning):
    """The qualifying spend is read after the lock: two payments of one member racing, each below
    the next tier alone, reach it together, whichever goes second."""
    import threading

    from django.db import close_old_connections

    Tier.objects.create(program=program, name="Silver", rank=2, threshold=Decimal("100"), qualifies_by="spend")
    pay(returning.user, "WARM-2", "1.00", day=1)  # the process learns the tiers
    started = threading.Barrier(3)

    def deliver(reference: str) -> None:
        started.wait()
        try:
            pay(returning.user, reference, "60.00", day=2)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=deliver, args=(f"R-{n}",)) for n in range(2)]
    with transaction.atomic():
        Member.objects.select_for_update().get(pk=returning.pk)  # both payments queue behind this lock
        for thread in threads:
            thread.start()
        started.wait()
        for _ in range(600):
            if _waiting_for_a_lock() == 2:
                break
            time.sleep(0.05)
        waited = _waiting_for_a_lock()
    for thread in threads:
        thread.join()

    assert waited == 2, "both payments were to wait for the member's lock"
    member = Member.objects.select_related("tier").get(pk=returning.pk)
    assert (member.tier.name, member.balance) == ("Silver", 1 + 1 + 60 + 60)
    assert TierChange.objects.filter(member=member).count() == 1


def _waiting_for_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else the first look is kept for the transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            [f"%{award.FUNCTION}%"],
        )
        return cursor.fetchone()[0]


def test_a_guests_payment_and_a_duplicate_are_one_statement(postgres_only, program, returning):
    assert statements(lambda: pay(None, "G-1", "25.00", day=1)) == ["SAVEPOINT", "SELECT", "RELEASE"]
    again = statements(lambda: pay(None, "G-1", "25.00", day=1))
    assert again[:3] == ["SAVEPOINT", "SELECT", "ROLLBACK"]  # then reads the event it already has
    assert Purchase.objects.filter(order_reference="G-1", member=None).count() == 1


def test_paying_through_the_shop_adds_at_most_four_statements(postgres_only, program, returning):
    from loyalty.receivers import connect_adapter, disconnect_adapter
    from shop.services import mark_paid
    from tests.factories import place_order

    orders = [place_order(total="20.00", user=returning.user) for _ in range(2)]
    with_loyalty = statements(lambda: mark_paid(order=orders[0]))
    disconnect_adapter()
    try:
        without = statements(lambda: mark_paid(order=orders[1]))
    finally:
        connect_adapter()
    # SAVEPOINT, the statement, RELEASE, and the demo adapter reading the order's category.
    assert len(with_loyalty) - len(without) <= 4, with_loyalty
    assert Member.objects.get(pk=returning.pk).balance == 21


def test_a_changed_programme_is_noticed_by_the_statement(postgres_only, program, returning):
    Program.objects.filter(pk=program.pk).update(points_per_unit=Decimal("3"))  # no save(): no new version

    pay(returning.user, "R-2", "10.00", day=2)

    assert PointsEntry.objects.get(reference="R-2").points == 30
    assert statements(lambda: pay(returning.user, "R-3", "10.00", day=3)) == ["SAVEPOINT", "SELECT", "RELEASE"]


def test_a_new_tier_is_noticed_by_the_statement(postgres_only, program, returning):
    Tier.objects.create(
        program=program, name="Silver", rank=2, threshold=Decimal("0"), qualifies_by="spend", multiplier=Decimal("2")
    )

    pay(returning.user, "R-2", "10.00", day=2)

    member = Member.objects.select_related("tier").get(pk=returning.pk)
    assert member.tier.name == "Silver"
    pay(returning.user, "R-3", "10.00", day=3)
    assert PointsEntry.objects.get(reference="R-3").points == 20


def test_a_deleted_tier_is_noticed_by_the_statement(postgres_only, program, returning):
    silver = Tier.objects.create(
        program=program, name="Silver", rank=2, threshold=Decimal("5000"), qualifies_by="spend"
    )
    Tier.objects.create(program=program, name="Gold", rank=3, threshold=Decimal("9000"), qualifies_by="spend")
    pay(returning.user, "R-2", "10.00", day=2)  # the process learns both tiers
    pay(returning.user, "R-3", "10.00", day=2.5)  # and pays with them

    silver.delete()
    pay(returning.user, "R-4", "10.00", day=3)

    assert PointsEntry.objects.get(reference="R-4").points == 10
    assert OrderEvent.objects.get(order_reference="R-4").status == OrderEvent.Status.PROCESSED


@pytest.fixture
def award_function_dropped():
    """The database as a project that runs its tests with ``--no-migrations`` has it."""
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER FUNCTION {award.FUNCTION} RENAME TO {award.FUNCTION}_away")
    yield
    award.award_function_forget_missing()  # the test's transaction rolls the rename back


def test_without_the_award_function_payments_take_the_portable_path(
    postgres_only, program, returning, award_function_dropped, caplog
):
    pay(returning.user, "R-2", "10.00", day=2)
    with CaptureQueriesContext(connection) as second:
        pay(returning.user, "R-3", "10.00", day=3)

    assert [e.points for e in PointsEntry.objects.filter(reference__in=["R-2", "R-3"])] == [10, 10]
    assert set(OrderEvent.objects.filter(order_reference__in=["R-2", "R-3"]).values_list("status", flat=True)) == {
        OrderEvent.Status.PROCESSED
    }
    assert not any(award.FUNCTION in q["sql"] for q in second.captured_queries)  # not tried again at once
    assert [r.message for r in caplog.records if "no loyalty_award_paid_v1 function" in r.message]
    assert Member.objects.get(pk=returning.pk).balance == 1 + 10 + 10


# --- deferred: batches ------------------------------------------------------------------------------


@pytest.fixture
def deferred(settings):
    settings.LOYALTY = {**settings.LOYALTY, "EVENT_PROCESSING": "deferred"}


def drain() -> dict[str, int]:
    from loyalty.services import events_process_pending

    totals: dict[str, int] = {}
    while counts := events_process_pending():
        for status, n in counts.items():
            totals[status] = totals.get(status, 0) + n
    return totals


def test_a_backlog_applied_in_batches_gives_the_rows_of_one_by_one(postgres_only, deferred, program, monkeypatch):
    Tier.objects.create(program=program, name="Silver", rank=2, threshold=Decimal("40"), qualifies_by="spend")
    EarningRule.objects.create(program=program, name="Welcome", kind=EarningRule.Kind.FIRST_PURCHASE, points=25)
    regulars = [enrolled(program, f"r{n}@example.com", orders_count=1).user for n in range(3)]
    newcomer = UserFactory(email="new@example.com")

    def play():
        for n in range(12):
            pay(regulars[n % 3], f"R-{n}", f"{7 + n}.50", day=n)
        pay(newcomer, "N-1", "20.00", day=1)  # not a member yet: enrolled, first-purchase bonus
        pay(None, "G-1", "15.00", day=2)
        pay(regulars[0], "R-0", "7.50", day=3, event_id="again")  # a second payment of R-0
        order_event_record(order_event(EventKind.REFUNDED, reference="R-1", amount="4.00", user=regulars[1], at=at(4)))
        assert drain() == {"processed": 15, "skipped": 1}

    batched, one_by_one = both_paths(play, monkeypatch)
    assert batched == one_by_one
    assert [t[0] for t in batched["tier_changes"]] == ["r0@example.com", "r1@example.com", "r2@example.com"]


def test_recording_a_deferred_payment_is_one_insert_in_its_savepoint(postgres_only, program, returning, deferred):
    from shop.services import mark_paid
    from tests.factories import place_order

    order = place_order(total="20.00", user=returning.user)
    sql = statements(lambda: mark_paid(order=order))

    # mark_paid's savepoint (the test runs in a transaction), its SELECT ... FOR UPDATE and UPDATE, the
    # demo adapter's category query, loyalty's three, then mark_paid's RELEASE
    assert sql == ["SAVEPOINT", "SELECT", "UPDATE", "SELECT", "SAVEPOINT", "INSERT", "RELEASE", "RELEASE"]
    again = statements(lambda: pay(returning.user, order.number, "20.00", day=1, event_id=f"order:{order.number}:paid"))
    assert again == ["SAVEPOINT", "INSERT", "RELEASE"]  # a second delivery: the same statement, nothing written
    row = OrderEvent.objects.get(order_reference=order.number)
    assert (row.status, row.attempts, row.last_error, row.payload["amount"]) == ("pending", 0, "", "20.00")
    assert drain() == {"processed": 1}
    assert Member.objects.get(pk=returning.pk).balance == 21


def test_a_batch_costs_the_same_statements_for_any_number_of_events(postgres_only, deferred, program):
    users = [enrolled(program, f"s{n}@example.com", orders_count=1).user for n in range(40)]
    cost = []
    for size in (5, 40):
        for n in range(size):
            pay(users[n], f"S-{size}-{n}", "10.00", day=n / 10)
        cost.append(statements(drain))
    assert cost[0] == cost[1]
    assert len(cost[0]) <= 16, cost[0]  # two runs: the batch, then one that finds nothing
    assert Member.objects.filter(balance=10).count() == 35 and Member.objects.filter(balance=20).count() == 5


def test_a_failing_batch_falls_back_to_one_event_at_a_time(postgres_only, deferred, program, caplog):
    users = [enrolled(program, f"f{n}@example.com", orders_count=1) for n in range(3)]
    # A ledger row that the batch will collide with (written by hand, outside the services).
    PointsEntry.objects.create(
        program=program, member=users[1], kind="bonus", points=1, remaining=1, idempotency_key="purchase:F-1:earn",
        created_at=at(0),
    )  # fmt: skip
    Member.objects.filter(pk=users[1].pk).update(balance=1)
    for n, member in enumerate(users):
        pay(member.user, f"F-{n}", "10.00", day=n)

    assert drain() == {"processed": 2, "failed": 1}

    assert OrderEvent.objects.get(order_reference="F-1").status == OrderEvent.Status.FAILED
    assert sorted(Member.objects.values_list("balance", flat=True)) == [1, 10, 10]
    assert "applying them one by one" in caplog.text
