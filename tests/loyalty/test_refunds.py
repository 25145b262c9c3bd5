"""Refunds and cancellations take points back pro rata, following the negative-balance policy."""

from decimal import Decimal

import pytest

from loyalty.models import Member, OrderEvent, PointsEntry, Program, Purchase
from loyalty.services import points_debit
from shop import services as shop_services
from shop.models import Order
from tests.factories import paid_order, place_order

pytestmark = pytest.mark.django_db


def balance(user) -> int:
    return Member.objects.get(user=user).balance


def redeem(member, points: int) -> None:
    points_debit(member=member, points=points, kind=PointsEntry.Kind.REDEEM, idempotency_key=f"voucher:{points}")


def reversals(order) -> list[int]:
    return list(
        PointsEntry.objects.filter(reference=order.number, kind=PointsEntry.Kind.REVERSE)
        .order_by("id")
        .values_list("points", flat=True)
    )


def test_partial_refunds_reverse_pro_rata_without_rounding_drift(program, customer):
    order = paid_order(total="100.00", user=customer)

    shop_services.refund_order(order=order, amount=Decimal("25.00"))
    assert reversals(order) == [-25]
    shop_services.refund_order(order=order, amount=Decimal("33.33"))
    assert reversals(order) == [-25, -33]  # cumulative floor(100 x 58.33 / 100) = 58
    shop_services.refund_order(order=order, amount=Decimal("41.67"))

    assert reversals(order) == [-25, -33, -42]
    assert balance(customer) == 0
    purchase = Purchase.objects.get(order_reference=order.number)
    assert purchase.status == Purchase.Status.REFUNDED
    assert purchase.refunded_amount == Decimal("100.00")
    assert purchase.points_reversed == 100
    assert Member.objects.get(user=customer).lifetime_points == 0


def test_a_partial_refund_takes_back_the_orders_own_points_first(program, customer):
    older = paid_order(total="10.00", user=customer)
    newer = paid_order(total="50.00", user=customer)

    shop_services.refund_order(order=newer, amount=Decimal("20.00"))

    lots = dict(PointsEntry.objects.filter(kind="earn").values_list("reference", "remaining"))
    assert lots == {older.number: 10, newer.number: 30}


def test_full_refund_after_redemption_may_go_negative_when_the_policy_allows(program, customer):
    order = paid_order(total="80.00", user=customer)
    member = Member.objects.get(user=customer)
    redeem(member, 60)

    shop_services.refund_order(order=order)

    assert balance(customer) == -60
    assert reversals(order) == [-80]


def test_full_refund_after_redemption_stops_at_zero_when_the_policy_forgives(program, customer):
    program.negative_balance_policy = Program.NegativeBalancePolicy.FORGIVE
    program.save()
    order = paid_order(total="80.00", user=customer)
    member = Member.objects.get(user=customer)
    redeem(member, 60)

    shop_services.refund_order(order=order)

    assert balance(customer) == 0
    assert reversals(order) == [-20]
    assert "60 points forgiven" in PointsEntry.objects.get(kind="reverse").description
    assert Purchase.objects.get(order_reference=order.number).points_reversed == 80


def test_points_earned_while_negative_pay_back_the_debt_first(program, customer):
    order = paid_order(total="50.00", user=customer)
    redeem(Member.objects.get(user=customer), 50)
    shop_services.refund_order(order=order)
    assert balance(customer) == -50

    later = paid_order(total="70.00", user=customer)

    assert balance(customer) == 20
    assert PointsEntry.objects.get(reference=later.number, kind="earn").remaining == 20


def test_cancelling_a_paid_order_reverses_everything(program, customer):
    order = paid_order(total="45.00", user=customer)

    shop_services.cancel_order(order=order)

    assert reversals(order) == [-45]
    assert balance(customer) == 0
    assert Purchase.objects.get(order_reference=order.number).status == Purchase.Status.CANCELLED


def test_cancelling_after_a_partial_refund_reverses_only_the_rest(program, customer):
    order = paid_order(total="40.00", user=customer)
    shop_services.refund_order(order=order, amount=Decimal("10.00"))
    # The demo shop refuses to cancel a refunded order; another shop might send it anyway.
    from loyalty.services import order_event_record
    from tests.factories import order_event

    order_event_record(order_event("cancelled", reference=order.number, user=customer))

    assert reversals(order) == [-10, -30]
    assert balance(customer) == 0


def test_cancelling_before_payment_does_nothing(program, customer):
    order = place_order(total="45.00", user=customer)

    shop_services.cancel_order(order=order)

    event = OrderEvent.objects.get(order_reference=order.number)
    assert event.status == OrderEvent.Status.SKIPPED
    assert "before it was paid" in event.last_error
    assert not PointsEntry.objects.exists()
    assert Order.objects.get(pk=order.pk).status == Order.Status.CANCELLED


def test_a_refund_of_a_guest_order_updates_the_purchase(program):
    order = paid_order(total="30.00", email="guest@example.org")
    shop_services.refund_order(order=order, amount=Decimal("12.00"))

    purchase = Purchase.objects.get(order_reference=order.number)
    assert purchase.refunded_amount == Decimal("12.00")
    assert purchase.status == Purchase.Status.PARTIALLY_REFUNDED


def test_the_same_refund_event_delivered_twice_reverses_once(program, customer):
    from shop import signals

    order = paid_order(total="60.00", user=customer)
    refund = shop_services.refund_order(order=order, amount=Decimal("30.00"))
    signals.order_refunded.send(sender=Order, order=order, refund=refund, amount=refund.amount)

    assert reversals(order) == [-30]
    assert balance(customer) == 30
