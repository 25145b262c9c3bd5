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
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from . import signals
from .exceptions import EmptyCart, InvalidDiscountCode, OrderStateError, ShopError
from .models import DiscountCode, Order, OrderLine, Product, Refund, normalise_code

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


def _money(amount: Decimal) -> str:
    from .templatetags.shop_tags import money

    return money(amount)


def discount_check(
    *,
    code: str,
    quantities: Mapping[int, int],
    prices: Mapping[int, Decimal],
    at: datetime | None = None,
    lock: bool = False,
) -> tuple[DiscountCode, Decimal]:
    """The discount code ``code`` and what it takes off these items, or :class:`InvalidDiscountCode`.

    ``quantities`` and ``prices`` are keyed by product id. ``lock`` holds the code's row
    until the transaction ends (checkout), so two orders cannot both use it.
    """
    normalised = normalise_code(code)
    codes = DiscountCode.objects.select_related("product")
    discount = (codes.select_for_update(of=("self",)) if lock else codes).filter(code=normalised).first()
    shown = normalised or code
    if discount is None or not discount.is_active:
        raise InvalidDiscountCode(_("The discount code %(code)s is not valid. Please check it.") % {"code": shown})
    if discount.used_at is not None:
        raise InvalidDiscountCode(_("The discount code %(code)s has already been used.") % {"code": shown})
    # Read the clock after the lock: a code expiring while we waited is expired.
    now = at or timezone.now()
    if discount.valid_until is not None and now >= discount.valid_until:
        raise InvalidDiscountCode(
            _("The discount code %(code)s expired on %(date)s.")
            % {"code": shown, "date": date_format(timezone.localtime(discount.valid_until), "DATE_FORMAT")}
        )
    subtotal = sum((prices[pid] * qty for pid, qty in quantities.items()), Decimal("0.00"))
    if discount.min_order_value is not None and subtotal < discount.min_order_value:
        raise InvalidDiscountCode(
            _("The discount code %(code)s needs an order of at least %(minimum)s; your order is %(subtotal)s.")
            % {"code": shown, "minimum": _money(discount.min_order_value), "subtotal": _money(subtotal)}
        )
    if discount.kind == DiscountCode.Kind.FREE_PRODUCT and not quantities.get(discount.product_id):
        raise InvalidDiscountCode(
            _("The discount code %(code)s gives you one %(product)s free: please add it to your cart first.")
            % {"code": shown, "product": discount.product.name}
        )
    return discount, discount.amount_off(subtotal, dict(quantities), dict(prices))


@transaction.atomic
def place_order(
    *,
    items: Mapping[int, int] | Iterable[tuple[int, int]],
    user: AbstractBaseUser | None = None,
    email: str = "",
    at: datetime | None = None,
    discount_code: str = "",
) -> Order:
    """Create a pending order from ``{product_id: quantity}`` at today's prices.

    A guest order needs an email; a signed-in customer's order defaults to the account's.
    ``discount_code`` (optional) is checked, taken off the total (never below zero) and
    marked used by this order, once: a refused code raises :class:`InvalidDiscountCode`.
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
    subtotal = sum((line.line_total for line in lines), Decimal("0.00")).quantize(CENT)
    discount, discount_total = None, Decimal("0.00")
    if normalise_code(discount_code):
        prices = {pid: product.price for pid, product in products.items()}
        discount, discount_total = discount_check(
            code=discount_code, quantities=quantities, prices=prices, at=at, lock=True
        )
    order = Order(
        number=_new_order_number(at),
        user=user if user is not None and user.is_authenticated else None,
        email=email,
        currency=settings.SHOP_CURRENCY,
        total=max(subtotal - discount_total, Decimal("0.00")),
        discount_total=discount_total,
        discount_code=discount.code if discount else "",
        created_at=at or timezone.now(),
    )
    _save_with_unique_number(order)
    for line in lines:
        line.order = order
    OrderLine.objects.bulk_create(lines)
    if discount is not None:
        # Conditional update: even without row locks (SQLite) a code is used by one order only.
        used = DiscountCode.objects.filter(pk=discount.pk, used_at__isnull=True).update(
            used_at=order.created_at, order=order
        )
        if used != 1:
            raise InvalidDiscountCode(
                _("The discount code %(code)s has already been used.") % {"code": discount.code}
            )
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
    if not was_paid:
        # Nothing was bought with it: the customer may use the code again. (After the signal:
        # receivers lock their own rows first, as they do when they look a code up.)
        DiscountCode.objects.filter(order=order).update(used_at=None, order=None)
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
