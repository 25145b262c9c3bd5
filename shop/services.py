"""Order state changes. Each one runs in a transaction and sends the shop's own signal in it."""

import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import signals
from .exceptions import EmptyCart, OrderStateError, ShopError
from .models import Order, OrderLine, Product, Refund

CENT = Decimal("0.01")


def _new_order_number(at: datetime | None = None) -> str:
    return f"{timezone.localtime(at or timezone.now()):%y%m}-{secrets.token_hex(4).upper()}"


def _save_with_unique_number(order: Order, attempts: int = 5) -> None:
    """Random numbers do not leak order volume; on the rare clash, draw again."""
    for attempt in range(attempts):
        try:
            with transaction.atomic():
                order.save(force_insert=True)
            return
        except IntegrityError:
            if attempt == attempts - 1 or Order.objects.filter(number=order.number).count() == 0:
                raise
            order.number = _new_order_number(order.created_at)


@transaction.atomic
def place_order(
    *,
    items: Mapping[int, int] | Iterable[tuple[int, int]],
    user: AbstractBaseUser | None = None,
    email: str = "",
    at: datetime | None = None,
) -> Order:
    """Create a pending order from ``{product_id: quantity}`` at today's prices.

    A guest order needs an email; a signed-in customer's order defaults to the account's.
    """
    pairs = list(items.items() if isinstance(items, Mapping) else items)
    quantities = {int(pid): int(qty) for pid, qty in pairs if int(qty) > 0}
    if not quantities:
        raise EmptyCart(_("Your cart is empty."))
    email = (email or (user.email if user is not None else "")).strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ShopError(_("Please enter a valid email address.")) from None

    products = Product.objects.in_bulk(quantities.keys())
    missing = [pid for pid in quantities if pid not in products or not products[pid].is_active]
    if missing:
        raise ShopError(_("Some products in your cart are no longer available."))

    lines = [
        OrderLine(product=products[pid], product_name=products[pid].name, unit_price=products[pid].price, quantity=qty)
        for pid, qty in quantities.items()
    ]
    order = Order(
        number=_new_order_number(at),
        user=user if user is not None and user.is_authenticated else None,
        email=email,
        currency=settings.SHOP_CURRENCY,
        total=sum((line.line_total for line in lines), Decimal("0.00")).quantize(CENT),
        created_at=at or timezone.now(),
    )
    _save_with_unique_number(order)
    for line in lines:
        line.order = order
    OrderLine.objects.bulk_create(lines)
    return order


def _locked(order: Order) -> Order:
    return Order.objects.select_for_update().get(pk=order.pk)


@transaction.atomic
def mark_paid(*, order: Order, at: datetime | None = None) -> Order:
    order = _locked(order)
    if order.status == Order.Status.PAID:
        return order  # a payment notification delivered twice
    if order.status != Order.Status.PENDING:
        raise OrderStateError(_("Order %(number)s cannot be paid: it is %(status)s.")
                              % {"number": order.number, "status": order.get_status_display().lower()})
    order.status = Order.Status.PAID
    order.paid_at = at or timezone.now()
    order.save(update_fields=["status", "paid_at"])
    signals.order_paid.send(sender=Order, order=order)
    return order


@transaction.atomic
def cancel_order(*, order: Order, at: datetime | None = None) -> Order:
    """Cancel a pending or paid (and not yet refunded) order."""
    order = _locked(order)
    if order.status == Order.Status.CANCELLED:
        return order
    if order.status not in (Order.Status.PENDING, Order.Status.PAID):
        raise OrderStateError(_("Order %(number)s cannot be cancelled: it is %(status)s.")
                              % {"number": order.number, "status": order.get_status_display().lower()})
    was_paid = order.status == Order.Status.PAID
    order.status = Order.Status.CANCELLED
    order.cancelled_at = at or timezone.now()
    order.save(update_fields=["status", "cancelled_at"])
    signals.order_cancelled.send(sender=Order, order=order, was_paid=was_paid)
    return order


@transaction.atomic
def refund_order(
    *,
    order: Order,
    amount: Decimal | None = None,
    reason: str = "",
    by: AbstractBaseUser | None = None,
    at: datetime | None = None,
) -> Refund:
    """Refund ``amount`` (default: everything still refundable) of a paid order."""
    order = _locked(order)
    if order.status not in (Order.Status.PAID, Order.Status.PARTIALLY_REFUNDED):
        raise OrderStateError(_("Order %(number)s cannot be refunded: it is %(status)s.")
                              % {"number": order.number, "status": order.get_status_display().lower()})
    amount = order.refundable_amount if amount is None else Decimal(amount)
    if amount != amount.quantize(CENT) or amount <= 0:
        raise ShopError(_("Enter a refund amount greater than zero, in cents at most."))
    if amount > order.refundable_amount:
        raise ShopError(_("At most %(amount)s %(currency)s can still be refunded.")
                        % {"amount": order.refundable_amount, "currency": order.currency})
    refund = Refund.objects.create(
        order=order,
        amount=amount,
        reason=reason,
        created_by=by if by is not None and by.is_authenticated else None,
        created_at=at or timezone.now(),
    )
    order.refunded_total += amount
    order.status = Order.Status.REFUNDED if order.refunded_total == order.total else Order.Status.PARTIALLY_REFUNDED
    order.save(update_fields=["refunded_total", "status"])
    signals.order_refunded.send(sender=Order, order=order, refund=refund, amount=amount)
    return refund


@transaction.atomic
def cancel_pending_order(*, order: Order, at: datetime | None = None) -> Order:
    """Cancel an order only while it still awaits payment: what a customer may do themselves.

    The status is checked under the row lock, so an order paid a moment ago is not cancelled.
    """
    order = _locked(order)
    if order.status not in (Order.Status.PENDING, Order.Status.CANCELLED):
        raise OrderStateError(_("Order %(number)s can no longer be cancelled: it is %(status)s.")
                              % {"number": order.number, "status": order.get_status_display().lower()})
    return cancel_order(order=order, at=at)
