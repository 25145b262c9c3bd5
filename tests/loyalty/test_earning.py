"""Paying an order earns points, once, through the shop's own signals."""

from decimal import Decimal

import pytest

from loyalty.models import Member, OrderEvent, PointsEntry, Purchase
from loyalty.services import order_event_record
from shop import signals as shop_signals
from shop.models import Order
from tests.factories import UserFactory, order_event, paid_order

pytestmark = pytest.mark.django_db


def test_paying_an_order_awards_floor_of_amount_times_rate(program, customer):
    program.points_per_unit = Decimal("1.5")
    program.save()

    order = paid_order(total="42.90", user=customer)

    member = Member.objects.get(user=customer, program=program)
    entry = PointsEntry.objects.get(member=member)
    assert entry.points == 64  # floor(42.90 x 1.5) = floor(64.35)
    assert entry.kind == PointsEntry.Kind.EARN
    assert entry.reference == order.number
    assert entry.remaining == 64
    assert member.balance == 64
    assert member.lifetime_points == 64
    assert Purchase.objects.get(order_reference=order.number).points_earned == 64


def test_first_paid_order_enrols_the_customer(program, customer):
    assert not Member.objects.filter(user=customer).exists()
    paid_order(total="10.00", user=customer)
    assert Member.objects.filter(user=customer, program=program).count() == 1


def test_earned_points_expire_after_the_programme_lifetime(program, customer):
    order = paid_order(total="10.00", user=customer)
    entry = PointsEntry.objects.get(reference=order.number)
    assert (entry.expires_at - entry.created_at).days == program.points_lifetime_days


def test_the_same_paid_signal_delivered_twice_awards_once(program, customer):
    order = paid_order(total="30.00", user=customer)

    shop_signals.order_paid.send(sender=Order, order=order)
    shop_signals.order_paid.send(sender=Order, order=order)

    member = Member.objects.get(user=customer)
    assert member.balance == 30
    assert PointsEntry.objects.filter(member=member).count() == 1
    assert OrderEvent.objects.filter(order_reference=order.number).count() == 1


def test_recording_the_same_event_twice_returns_the_first(program, customer):
    event = order_event(reference="R-7", amount="12.00", user=customer)

    first = order_event_record(event)
    second = order_event_record(event)

    assert first.created and not second.created
    assert second.event.pk == first.event.pk
    assert Member.objects.get(user=customer).balance == 12


def test_a_second_payment_event_for_one_order_under_another_id_is_skipped(program, customer):
    order_event_record(order_event(reference="R-8", amount="20.00", user=customer, event_id="pay-1"))
    result = order_event_record(order_event(reference="R-8", amount="20.00", user=customer, event_id="pay-2"))

    assert result.status == OrderEvent.Status.SKIPPED
    assert "paid already" in result.event.last_error
    assert Member.objects.get(user=customer).balance == 20


def test_guest_orders_are_purchases_without_a_member(program):
    order = paid_order(total="25.00", email="guest@example.org")

    purchase = Purchase.objects.get(order_reference=order.number)
    assert purchase.member is None
    assert purchase.email == "guest@example.org"
    assert purchase.amount == Decimal("25.00")
    assert purchase.points_earned == 0
    assert not PointsEntry.objects.exists()
    assert not Member.objects.exists()


def test_an_order_of_a_deleted_user_is_kept_as_a_guest_purchase(program):
    ghost = UserFactory()
    event = order_event(reference="R-9", amount="9.00", user=ghost, email="gone@example.com")
    ghost.delete()

    result = order_event_record(event)

    assert result.status == OrderEvent.Status.PROCESSED
    assert Purchase.objects.get(order_reference="R-9").member is None


def test_an_order_in_another_currency_is_skipped_with_a_reason(program, customer):
    event = order_event(reference="R-10", user=customer)
    event = event.__class__(**{**event.__dict__, "currency": "CHF"})

    result = order_event_record(event)

    assert result.status == OrderEvent.Status.SKIPPED
    assert "CHF" in result.event.last_error
    assert not Purchase.objects.exists()


def test_without_a_programme_orders_are_stored_and_skipped(customer):
    order = paid_order(total="10.00", user=customer)

    event = OrderEvent.objects.get(order_reference=order.number)
    assert event.status == OrderEvent.Status.SKIPPED
    assert order.status == Order.Status.PAID


def test_a_zero_amount_order_earns_nothing_and_writes_no_zero_row(program, customer):
    order_event_record(order_event(reference="R-11", amount="0.50", user=customer))
    assert Purchase.objects.get(order_reference="R-11").points_earned == 0
    assert not PointsEntry.objects.exists()


def test_loyalty_adds_a_small_constant_number_of_queries_per_paid_order(
    program, django_assert_max_num_queries, customer
):
    from shop.services import mark_paid
    from tests.factories import place_order

    paid_order(total="5.00", user=customer)  # membership exists from now on
    orders = [place_order(total="20.00", user=customer) for _ in range(3)]
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        mark_paid(order=orders[0])
    with_loyalty = len(ctx)
    from loyalty.receivers import connect_adapter, disconnect_adapter

    disconnect_adapter()
    try:
        with CaptureQueriesContext(connection) as ctx:
            mark_paid(order=orders[1])
        without = len(ctx)
    finally:
        connect_adapter()
    # 8 for loyalty, 1 for the demo adapter reading the category of the order's largest line.
    assert with_loyalty - without <= 9, [q["sql"] for q in ctx.captured_queries]


def test_earn_for_purchase_called_again_credits_once(program, customer):
    from loyalty.services import earn_for_purchase

    order = paid_order(total="18.00", user=customer)
    purchase = Purchase.objects.get(order_reference=order.number)

    again = earn_for_purchase(purchase=purchase)

    assert again.points == 18
    assert Member.objects.get(user=customer).balance == 18
    assert PointsEntry.objects.count() == 1
