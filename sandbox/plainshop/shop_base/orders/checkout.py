"""The shop's checkout: every change to an order is one transaction that sends its signal."""

import secrets
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from .models import Order
from .signals import money_returned, order_voided, payment_received


@transaction.atomic
def place_order(*, buyer=None, email: str = "", subtotal: Decimal, shipping_fee: Decimal = Decimal("4.90")) -> Order:
    return Order.objects.create(
        reference=f"PS-{secrets.token_hex(4).upper()}",
        buyer=buyer,
        buyer_email=email or buyer.email,
        subtotal=subtotal,
        shipping_fee=shipping_fee,
        amount_due=subtotal + shipping_fee,
    )


def _locked(order: Order) -> Order:
    return Order.objects.select_for_update().get(pk=order.pk)


@transaction.atomic
def take_payment(order: Order) -> Order:
    order = _locked(order)
    if order.state != Order.State.OPEN:
        raise ValueError(f"Order {order.reference} is {order.state}.")
    order.state, order.paid = Order.State.PAID, timezone.now()
    order.save(update_fields=["state", "paid"])
    payment_received.send(sender=Order, order=order)
    return order


@transaction.atomic
def void_order(order: Order) -> Order:
    order = _locked(order)
    was_paid = order.state == Order.State.PAID
    order.state, order.voided = Order.State.VOIDED, timezone.now()
    order.save(update_fields=["state", "voided"])
    order_voided.send(sender=Order, order=order, was_paid=was_paid)
    return order


@transaction.atomic
def return_money(order: Order, amount: Decimal) -> Order:
    order = _locked(order)
    order.refunded += amount
    order.save(update_fields=["refunded"])
    money_returned.send(sender=Order, order=order, amount=amount)
    return order
