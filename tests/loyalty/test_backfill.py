"""Backfill of past orders: the service, the demo adapter's iter_historical_orders, the command."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from loyalty.adapters.base import BaseAdapter, HistoricalOrder
from loyalty.exceptions import InvalidEvent
from loyalty.models import CustomerHealth, Member, PointsEntry, Purchase
from loyalty.services import member_enroll
from loyalty.services.backfill import orders_backfill
from shop import services as shop
from tests.factories import UserFactory, paid_order, place_order

pytestmark = pytest.mark.django_db

DAY0 = datetime(2024, 1, 10, 12, tzinfo=timezone.utc)


def backfill(*args, **options) -> str:
    out = StringIO()
    call_command("loyalty_backfill", *args, stdout=out, **options)
    return out.getvalue()


def check_ledger() -> str:
    out = StringIO()
    call_command("loyalty_check_ledger", stdout=out)
    return out.getvalue()


@pytest.fixture
def history(program, customer, settings):
    """Past orders in the shop, paid before loyalty was connected."""
    from loyalty.receivers import connect_adapter, disconnect_adapter

    settings.LOYALTY = {"ADAPTER": None}
    disconnect_adapter()
    try:
        other = UserFactory(email="luca@example.com")
        orders = {
            "member_paid": paid_order(total="100.00", user=customer, at=DAY0),
            "member_partial": paid_order(total="80.00", user=customer, at=DAY0 + timedelta(days=30)),
            "member_refunded": paid_order(total="40.00", user=customer, at=DAY0 + timedelta(days=60)),
            "other_paid": paid_order(total="25.50", user=other, at=DAY0 + timedelta(days=5)),
            "guest_paid": paid_order(total="60.00", email="guest@example.com", at=DAY0 + timedelta(days=10)),
            "cancelled_after_payment": paid_order(total="30.00", user=other, at=DAY0 + timedelta(days=20)),
            "never_paid": place_order(total="10.00", user=customer, at=DAY0 + timedelta(days=1)),
        }
        shop.refund_order(order=orders["member_partial"], amount=Decimal("20.00"))
        shop.refund_order(order=orders["member_refunded"], amount=Decimal("40.00"))
        shop.cancel_order(order=orders["cancelled_after_payment"])
    finally:
        settings.LOYALTY = {"ADAPTER": "config.loyalty_adapter.ShopAdapter"}
        connect_adapter()
    for order in orders.values():
        order.refresh_from_db()
    return orders


def ledger_state():
    return (
        sorted(
            Purchase.objects.values_list("order_reference", "member_id", "status", "points_earned", "points_reversed")
        ),
        sorted(Member.objects.values_list("user_id", "balance", "lifetime_points", "orders_count", "last_purchase_at")),
        sorted(PointsEntry.objects.values_list("idempotency_key", "points", "remaining", "created_at")),
    )


def test_imports_member_and_guest_orders_with_statuses_refunds_and_points(history, customer):
    out = backfill()

    assert "chunk 1:" in out and "Done:" in out
    purchases = {p.order_reference: p for p in Purchase.objects.all()}
    assert history["never_paid"].number not in purchases
    assert len(purchases) == 6
    paid = purchases[history["member_paid"].number]
    assert (paid.status, paid.amount, paid.points_earned, paid.points_reversed) == ("paid", Decimal("100.00"), 100, 0)
    partial = purchases[history["member_partial"].number]
    assert (partial.status, partial.refunded_amount) == ("partially_refunded", Decimal("20.00"))
    assert (partial.points_earned, partial.points_reversed) == (80, 20)
    refunded = purchases[history["member_refunded"].number]
    assert (refunded.status, refunded.points_reversed) == ("refunded", 40)
    assert purchases[history["cancelled_after_payment"].number].status == "cancelled"
    guest = purchases[history["guest_paid"].number]
    assert guest.member_id is None and guest.email == "guest@example.com" and guest.points_earned == 0

    member = Member.objects.get(user=customer)
    assert member.balance == 100 + 60  # the partial refund took 20 of 80, the full refund all 40
    assert member.lifetime_points == 160
    assert member.orders_count == 3
    assert member.last_purchase_at == history["member_refunded"].paid_at
    earn = PointsEntry.objects.get(idempotency_key=f"purchase:{history['member_paid'].number}:earn")
    assert earn.created_at == history["member_paid"].paid_at  # dated at the payment: expiry counts from it
    assert earn.expires_at == history["member_paid"].paid_at + timedelta(days=365)
    assert earn.kind == "earn" and earn.purchase_id == paid.pk
    other = Member.objects.get(user__email="luca@example.com")  # enrolled by the backfill
    assert other.balance == 25 and other.orders_count == 2
    assert other.joined_at == history["other_paid"].paid_at
    assert "Ledger consistent" in check_ledger()


def test_running_twice_changes_nothing(history):
    backfill()
    before = ledger_state()
    out = backfill()

    assert "0 imported, 6 skipped" in out
    assert ledger_state() == before
    assert "Ledger consistent" in check_ledger()


def test_without_points_only_purchases_are_written(history, customer):
    backfill("--no-award-points")

    assert Purchase.objects.count() == 6
    assert not PointsEntry.objects.exists()
    assert set(Purchase.objects.values_list("points_earned", "points_reversed")) == {(0, 0)}
    member = Member.objects.get(user=customer)
    assert (member.balance, member.orders_count) == (0, 3)
    assert "Ledger consistent" in check_ledger()


def test_resumes_after_a_reference(history):
    ordered = sorted(
        (o for o in history.values() if o.paid_at is not None), key=lambda order: (order.paid_at, order.number)
    )
    out = backfill("--after", ordered[2].number)

    assert sorted(Purchase.objects.values_list("order_reference", flat=True)) == sorted(o.number for o in ordered[3:])
    assert f"last {ordered[-1].number}" in out
    backfill()  # the rest; the resumed part is skipped
    assert Purchase.objects.count() == 6
    assert "Ledger consistent" in check_ledger()


def test_since_and_an_unknown_reference(history):
    backfill("--since", (DAY0 + timedelta(days=15)).strftime("%Y-%m-%d"))
    assert Purchase.objects.count() == 3  # paid on days 20, 30 and 60

    with pytest.raises(CommandError, match="no paid order 'NOPE'"):
        backfill("--after", "NOPE")
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        backfill("--since", "10.01.2024")


def test_the_command_errors_clearly_without_adapter_support(program, settings):
    settings.LOYALTY = {"ADAPTER": "tests.loyalty.test_backfill.SignalsOnlyAdapter"}
    with pytest.raises(CommandError, match="SignalsOnlyAdapter cannot list past orders: implement iter_historical"):
        backfill()

    settings.LOYALTY = {"ADAPTER": None}
    with pytest.raises(CommandError, match="No loyalty adapter is configured"):
        backfill()


class SignalsOnlyAdapter(BaseAdapter):
    def connections(self):
        return []


def test_health_refresh_works_right_after_a_backfill(history, customer):
    backfill("--no-award-points")
    out = StringIO()
    call_command("loyalty_refresh_health", stdout=out)

    assert "2 members scored" in out.getvalue()
    health = CustomerHealth.objects.get(member__user=customer)
    assert health.frequency >= 1 and health.segment


def test_existing_members_keep_their_balance_and_a_negative_balance_is_paid_back_first(program, customer):
    member = member_enroll(program=program, user=customer)[0]
    Member.objects.filter(pk=member.pk).update(balance=-30)  # points spent, then an order refunded
    PointsEntry.objects.create(
        program=program, member=member, kind="reverse", points=-30, idempotency_key="test:neg", created_at=DAY0
    )
    orders = [
        HistoricalOrder(reference="H1", amount=Decimal("50.00"), currency="EUR", paid_at=DAY0, user_id=customer.pk)
    ]

    result = orders_backfill(orders=orders, program=program, award_points=True)

    member.refresh_from_db()
    assert (result.imported, result.points, member.balance) == (1, 50, 20)
    assert PointsEntry.objects.get(idempotency_key="purchase:H1:earn").remaining == 20
    assert "Ledger consistent" in check_ledger()


def test_orders_in_another_currency_and_duplicates_are_skipped(program, customer):
    orders = [
        HistoricalOrder(reference="A", amount=Decimal("10.00"), currency="EUR", paid_at=DAY0, user_id=customer.pk),
        HistoricalOrder(reference="A", amount=Decimal("10.00"), currency="EUR", paid_at=DAY0, user_id=customer.pk),
        HistoricalOrder(reference="B", amount=Decimal("10.00"), currency="CHF", paid_at=DAY0, email="x@example.com"),
    ]
    result = orders_backfill(orders=orders, program=program, award_points=True)
    assert (result.orders, result.imported, result.skipped, result.other_currency) == (3, 1, 2, 1)
    assert Member.objects.get(user=customer).balance == 10


def test_a_historical_order_validates_itself():
    with pytest.raises(InvalidEvent) as caught:
        HistoricalOrder(reference="", amount=5, currency="EURO", paid_at=datetime(2024, 1, 1), status="lost")
    message = str(caught.value)
    for problem in ("reference is required", "amount must be a Decimal", "currency", "aware", "status", "user_id"):
        assert problem in message
    with pytest.raises(InvalidEvent, match="refunded_amount"):
        HistoricalOrder(
            reference="R",
            amount=Decimal("5"),
            refunded_amount=Decimal("6"),
            currency="EUR",
            paid_at=DAY0,
            email="a@b.c",
        )


def _orders(count: int, users: list, prefix: str) -> list[HistoricalOrder]:
    statuses = ("paid", "paid", "partially_refunded", "refunded", "cancelled")
    result = []
    for n in range(count):
        status = statuses[n % len(statuses)]
        amount = Decimal(10 + n % 90)
        refunded = {"partially_refunded": amount / 4, "refunded": amount}.get(status, Decimal("0"))
        user = users[n % len(users)] if n % 3 else None
        result.append(
            HistoricalOrder(
                reference=f"{prefix}{n:06d}",
                amount=amount,
                refunded_amount=refunded,
                currency="EUR",
                paid_at=DAY0 + timedelta(hours=n),
                user_id=user.pk if user else None,
                email="" if user else f"guest{n}@example.com",
                status=status,
            )
        )
    return result


def test_queries_per_chunk_do_not_grow_with_the_number_of_orders(program):
    users = UserFactory.create_batch(60)

    def queries(count: int, prefix: str, buyers) -> tuple[int, int]:
        with CaptureQueriesContext(connection) as captured:
            result = orders_backfill(
                orders=_orders(count, buyers, prefix), program=program, award_points=True, chunk_size=100
            )
        return len(captured), result.chunks

    small, small_chunks = queries(100, "S", users[:30])  # 1 chunk, 20 customers enrolled
    large, large_chunks = queries(1000, "L", users)  # 10 chunks, existing and new customers
    assert (small_chunks, large_chunks) == (1, 10)
    assert large <= 10 * (small + 2), (small, large)
    assert small <= 20, small  # a fixed handful per chunk (more on SQLite: its bulk inserts come in batches)
    assert "Ledger consistent" in check_ledger()
