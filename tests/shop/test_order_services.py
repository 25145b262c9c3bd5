"""The order state machine in shop.services, and the signals it sends."""

from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser

from shop import services, signals
from shop.exceptions import EmptyCart, OrderStateError, ShopError
from shop.models import Order, Refund

from .helpers import paid_order, pending_order

pytestmark = pytest.mark.django_db


@contextmanager
def capture(signal):
    """Record every send of ``signal`` as a dict of its kwargs (plus sender)."""
    calls = []

    def receiver(sender, **kwargs):
        kwargs.pop("signal", None)
        calls.append({"sender": sender, **kwargs})

    signal.connect(receiver, weak=False)
    try:
        yield calls
    finally:
        signal.disconnect(receiver)


# --- place_order ---------------------------------------------------------------------


def test_place_order_uses_todays_prices(soap, balm):
    order = services.place_order(items={soap.pk: 2, balm.pk: 1}, email="g@example.com")
    assert order.status == Order.Status.PENDING
    assert order.total == Decimal("27.90")
    assert order.currency == "EUR"
    assert order.user is None
    assert order.lines.count() == 2


def test_place_order_for_a_customer_defaults_to_the_account_email(shopper, soap):
    order = services.place_order(items={soap.pk: 1}, user=shopper)
    assert (order.user, order.email) == (shopper, "anna@example.com")


def test_place_order_with_an_anonymous_user_is_a_guest_order(soap):
    order = services.place_order(items={soap.pk: 1}, user=AnonymousUser(), email="g@example.com")
    assert order.user is None


@pytest.mark.parametrize(
    ("items", "email", "error", "message"),
    [
        (lambda soap: {}, "g@example.com", EmptyCart, "Your cart is empty."),
        (lambda soap: {soap.pk: 0}, "g@example.com", EmptyCart, "Your cart is empty."),
        (lambda soap: {soap.pk: 1}, "nope", ShopError, "Please enter a valid email address."),
        (lambda soap: {soap.pk + 1000: 1}, "g@example.com", ShopError, "Some products in your cart are no longer"),
    ],
)
def test_place_order_refusals(soap, items, email, error, message):
    with pytest.raises(error) as excinfo:
        services.place_order(items=items(soap), email=email)
    assert str(excinfo.value).startswith(message)
    assert Order.objects.count() == 0


def test_place_order_refuses_products_taken_off_sale(soap):
    soap.is_active = False
    soap.save()
    with pytest.raises(ShopError, match="no longer available"):
        services.place_order(items={soap.pk: 1}, email="g@example.com")


# --- mark_paid -----------------------------------------------------------------------


def test_pay_sends_order_paid_once(soap):
    order = pending_order(soap)
    with capture(signals.order_paid) as calls:
        paid = services.mark_paid(order=order)
        again = services.mark_paid(order=order)  # a payment notification delivered twice
    assert paid.status == again.status == Order.Status.PAID
    assert again.paid_at == paid.paid_at
    assert len(calls) == 1
    assert calls[0]["sender"] is Order
    assert calls[0]["order"].pk == order.pk
    assert calls[0]["order"].status == Order.Status.PAID
    assert set(calls[0]) == {"sender", "order"}


def test_a_cancelled_order_cannot_be_paid(soap):
    order = services.cancel_order(order=pending_order(soap))
    with capture(signals.order_paid) as calls, pytest.raises(OrderStateError) as excinfo:
        services.mark_paid(order=order)
    assert str(excinfo.value) == f"Order {order.number} cannot be paid: it is cancelled."
    assert calls == []


# --- cancel_order --------------------------------------------------------------------


def test_cancel_pending_order(soap):
    order = pending_order(soap)
    with capture(signals.order_cancelled) as calls:
        cancelled = services.cancel_order(order=order)
    assert cancelled.status == Order.Status.CANCELLED and cancelled.cancelled_at is not None
    assert len(calls) == 1
    assert calls[0]["was_paid"] is False
    assert calls[0]["order"].pk == order.pk


def test_cancel_paid_order_says_it_was_paid(soap):
    order = paid_order(soap)
    with capture(signals.order_cancelled) as calls:
        services.cancel_order(order=order)
        services.cancel_order(order=order)  # twice: a no-op
    assert [c["was_paid"] for c in calls] == [True]
    assert set(calls[0]) == {"sender", "order", "was_paid"}


def test_a_refunded_order_cannot_be_cancelled(soap):
    order = paid_order(soap)
    services.refund_order(order=order, amount=Decimal("1.00"))
    with pytest.raises(OrderStateError, match="cannot be cancelled: it is partially refunded"):
        services.cancel_order(order=order)


def test_cancel_pending_order_only_while_pending(soap):
    order = pending_order(soap)
    assert services.cancel_pending_order(order=order).status == Order.Status.CANCELLED
    assert services.cancel_pending_order(order=order).status == Order.Status.CANCELLED  # no-op
    paid = paid_order(soap)
    with capture(signals.order_cancelled) as calls, pytest.raises(OrderStateError) as excinfo:
        services.cancel_pending_order(order=paid)
    assert str(excinfo.value) == f"Order {paid.number} can no longer be cancelled: it is paid."
    assert calls == []
    paid.refresh_from_db()
    assert paid.status == Order.Status.PAID


# --- refund_order --------------------------------------------------------------------


def test_refund_partially_then_in_full(soap, balm, admin_user):
    order = paid_order(soap, balm)  # 20.40
    with capture(signals.order_refunded) as calls:
        first = services.refund_order(order=order, amount=Decimal("5.00"), reason="Dented tin", by=admin_user)
        order.refresh_from_db()
        assert order.status == Order.Status.PARTIALLY_REFUNDED
        assert order.refunded_total == Decimal("5.00")
        assert order.refundable_amount == Decimal("15.40")

        second = services.refund_order(order=order)  # the rest
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert order.refunded_total == order.total == Decimal("20.40")
    assert (first.amount, first.reason, first.created_by) == (Decimal("5.00"), "Dented tin", admin_user)
    assert second.amount == Decimal("15.40")
    assert list(Refund.objects.filter(order=order).order_by("id")) == [first, second]

    assert [(c["refund"], c["amount"]) for c in calls] == [(first, Decimal("5.00")), (second, Decimal("15.40"))]
    assert all(c["sender"] is Order and c["order"].pk == order.pk for c in calls)
    assert calls[0]["order"].refunded_total == Decimal("5.00")  # the running total at that moment
    assert set(calls[0]) == {"sender", "order", "refund", "amount"}


def test_over_refund_is_refused_with_a_message(soap):
    order = paid_order(soap)  # 7.50
    services.refund_order(order=order, amount=Decimal("5.00"))
    with capture(signals.order_refunded) as calls, pytest.raises(ShopError) as excinfo:
        services.refund_order(order=order, amount=Decimal("2.51"))
    assert str(excinfo.value) == "At most 2.50 EUR can still be refunded."
    assert calls == []
    order.refresh_from_db()
    assert order.refunded_total == Decimal("5.00")


@pytest.mark.parametrize("amount", ["0", "-1.00", "0.001"])
def test_refund_amount_must_be_positive_cents(soap, amount):
    order = paid_order(soap)
    with pytest.raises(ShopError, match="greater than zero"):
        services.refund_order(order=order, amount=Decimal(amount))


def test_refund_of_a_pending_order_is_refused(soap):
    order = pending_order(soap)
    with capture(signals.order_refunded) as calls, pytest.raises(OrderStateError) as excinfo:
        services.refund_order(order=order)
    assert str(excinfo.value) == f"Order {order.number} cannot be refunded: it is awaiting payment."
    assert calls == [] and Refund.objects.count() == 0


def test_a_fully_refunded_order_cannot_be_refunded_again(soap):
    order = paid_order(soap)
    services.refund_order(order=order)
    with pytest.raises(OrderStateError, match="it is refunded"):
        services.refund_order(order=order, amount=Decimal("0.01"))
