"""Backfill from django-oscar: the shop's past paid orders as ``HistoricalOrder`` rows, for
``OscarAdapter.iter_historical_orders`` (``manage.py loyalty_backfill``). Like ``oscar.py``, it
imports oscar's models only when it runs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal

from django.db.models import DecimalField, Exists, ExpressionWrapper, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from .base import HistoricalOrder, HistoricalStatus

logger = logging.getLogger("loyalty.adapters.oscar")


def _amount_expression(name: str):
    """``name`` (one of ``AMOUNTS``) as a database expression, for the backfill's one query."""
    tax = name.rsplit("_", 2)[-2] + "_tax"  # incl_tax / excl_tax
    if name.startswith("total_"):
        return F(name)
    Surcharge = _model("order", "Surcharge")
    surcharges = (
        Surcharge._default_manager.filter(order=OuterRef("pk"))
        .order_by()
        .values("order")
        .annotate(total=Sum(tax))
        .values("total")
    )
    zero = Value(Decimal("0.00"), output_field=DecimalField(max_digits=12, decimal_places=2))
    return ExpressionWrapper(
        F(f"total_{tax}") - F(f"shipping_{tax}") - Coalesce(Subquery(surcharges), zero),
        output_field=DecimalField(max_digits=12, decimal_places=2),
    )


def _model(app_label: str, name: str):
    from oscar.core.loading import get_model

    return get_model(app_label, name)


def oscar_historical_orders(adapter, *, since=None, after=None) -> Iterable[HistoricalOrder]:
    """``adapter``'s paid orders (its ``PAID_STATUSES``, ``CANCELLED_STATUSES``, ``REFUNDED_STATUSES`` and
    amount field), oldest first, from ``since`` or after the order numbered ``after``."""
    Order = _model("order", "Order")
    orders = Order._default_manager.all()
    if adapter.PAID_STATUSES:
        OrderStatusChange = _model("order", "OrderStatusChange")
        reached_paid = OrderStatusChange._default_manager.filter(
            order=OuterRef("pk"), new_status__in=adapter.PAID_STATUSES
        )
        orders = orders.filter(Q(status__in=adapter.PAID_STATUSES) | Exists(reached_paid))
    if since is not None:
        orders = orders.filter(date_placed__gte=since)
    if after is not None:
        placed = orders.filter(number=after).values_list("date_placed", flat=True).first()
        if placed is None:
            raise ValueError(f"The shop has no paid order {after!r} to resume after.")
        orders = orders.filter(Q(date_placed__gt=placed) | Q(date_placed=placed, number__gt=after))
    rows = (
        orders.annotate(loyalty_amount=_amount_expression(adapter._amount_name()))
        .order_by("date_placed", "number")
        .values_list(
            "number", "loyalty_amount", "currency", "date_placed", "user_id", "user__email", "guest_email", "status"
        )
    )
    for number, amount, currency, placed, user_id, user_email, guest_email, status in rows.iterator(chunk_size=5000):
        email = (user_email if user_id is not None else guest_email) or ""
        if user_id is None and not email:
            logger.warning("Oscar order %s has neither a user nor a guest email: not backfilled.", number)
            continue
        amount = Decimal(amount).quantize(Decimal("0.01"))
        if status in adapter.CANCELLED_STATUSES:
            state, refunded = HistoricalStatus.CANCELLED, Decimal("0.00")
        elif status in adapter.REFUNDED_STATUSES:
            state, refunded = HistoricalStatus.REFUNDED, amount
        else:
            state, refunded = HistoricalStatus.PAID, Decimal("0.00")
        yield HistoricalOrder(
            reference=str(number),
            amount=amount,
            currency=currency,
            paid_at=placed,
            user_id=user_id,
            email=email,
            refunded_amount=refunded,
            status=state,
        )
