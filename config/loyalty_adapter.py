"""The demo shop's loyalty adapter: the example to copy into your own project.

It is the only place that knows both sides: it listens to the shop's order signals,
describes each one as a loyalty ``OrderEvent``, and it turns a redeemed loyalty reward into
one of the shop's own ``DiscountCode`` rows. Twenty lines each for a typical shop.
"""

from functools import cache

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, OuterRef, Q, Subquery

from loyalty.adapters.base import BaseAdapter, CheckoutBasket, DiscountStatus, EventKind, HistoricalOrder, OrderEvent
from shop import signals
from shop.cart import Cart
from shop.models import DiscountCode, Order, OrderLine, Product, new_discount_code

# Loyalty's reward kinds are named like the shop's discount kinds; a shop with other names maps them here.
DISCOUNT_KINDS = {
    "fixed": DiscountCode.Kind.FIXED,
    "percent": DiscountCode.Kind.PERCENT,
    "free_shipping": DiscountCode.Kind.FREE_SHIPPING,
    "free_product": DiscountCode.Kind.FREE_PRODUCT,
}


def lines_by_size(order_id):
    """The order's lines, largest (by line total) first: loyalty files an order under the first one's category."""
    return (
        OrderLine.objects.filter(order_id=order_id)
        .annotate(line_total=F("unit_price") * F("quantity"))
        .order_by("-line_total", "pk")
    )


@cache
def _category_sql() -> str:
    line, product = OrderLine._meta.db_table, Product._meta.db_table
    return (
        f'SELECT p."category" FROM "{line}" l LEFT JOIN "{product}" p ON p."id" = l."product_id" '
        'WHERE l."order_id" = %s ORDER BY l."unit_price" * l."quantity" DESC, l."id" LIMIT 1'
    )


def order_category(order_id) -> str:
    """The category of the order's largest line (as ``lines_by_size`` orders them).

    This runs in every payment's transaction, so it is one short indexed query written out:
    the ORM spelling (``lines_by_size(order_id).values_list(...).first()``) costs more Python
    than the whole loyalty award.
    """
    with connection.cursor() as cursor:
        cursor.execute(_category_sql(), [order_id])
        row = cursor.fetchone()
    return (row[0] if row else None) or ""


class ShopAdapter(BaseAdapter):
    def connections(self):
        return [
            (signals.order_paid, self.order_paid),
            (signals.order_refunded, self.order_refunded),
            (signals.order_cancelled, self.order_cancelled),
        ]

    def _event(
        self, order: Order, kind: str, event_id: str, amount, occurred_at, category: str = "", codes=()
    ) -> OrderEvent:
        return OrderEvent(
            kind=kind,
            event_id=event_id,
            order_reference=order.number,
            amount=amount,
            currency=order.currency,
            occurred_at=occurred_at,
            user_id=order.user_id,
            email=order.email,
            category=category,
            discount_codes=codes,  # a loyalty reward code among them is marked used at once
        )

    def order_paid(self, sender, order: Order, **kwargs) -> OrderEvent:
        codes = (order.discount_code,) if order.discount_code else ()
        category = order_category(order.pk)
        return self._event(
            order, EventKind.PAID, f"order:{order.number}:paid", order.total, order.paid_at, category, codes
        )

    def order_refunded(self, sender, order: Order, refund, amount, **kwargs) -> OrderEvent:
        return self._event(
            order, EventKind.REFUNDED, f"order:{order.number}:refund:{refund.pk}", amount, refund.created_at
        )

    def order_cancelled(self, sender, order: Order, **kwargs) -> OrderEvent:
        codes = (order.discount_code,) if order.discount_code else ()  # points used at checkout come back
        return self._event(
            order, EventKind.CANCELLED, f"order:{order.number}:cancelled", order.total, order.cancelled_at, codes=codes
        )

    # --- backfill: the shop's past orders -------------------------------------------------

    def iter_historical_orders(self, *, since=None, after=None):
        # Every order that was paid; Order.refunded_total already holds the sum of its refunds,
        # so one streamed query reads them all (no query per order).
        orders = Order.objects.filter(paid_at__isnull=False).exclude(status=Order.Status.PENDING)
        if since is not None:
            orders = orders.filter(paid_at__gte=since)
        if after is not None:
            paid_at = (
                Order.objects.filter(number=after, paid_at__isnull=False).values_list("paid_at", flat=True).first()
            )
            if paid_at is None:
                raise ValueError(f"The shop has no paid order {after!r} to resume after.")
            orders = orders.filter(Q(paid_at__gt=paid_at) | Q(paid_at=paid_at, number__gt=after))
        rows = (
            orders.annotate(category=Subquery(lines_by_size(OuterRef("pk")).values("product__category")[:1]))
            .order_by("paid_at", "number")
            .values_list(
                "number", "total", "currency", "paid_at", "user_id", "email", "refunded_total", "status", "category"
            )
        )
        for number, total, currency, paid_at, user_id, email, refunded, status, category in rows.iterator(
            chunk_size=5000
        ):
            yield HistoricalOrder(
                reference=number,
                amount=total,
                currency=currency,
                paid_at=paid_at,
                user_id=user_id,
                email=email,
                refunded_amount=refunded,
                status=status,  # the shop's statuses after payment are named like loyalty's
                category=category or "",
            )

    # --- rewards -> the shop's discount codes ---------------------------------------------

    def issue_discount(self, *, redemption) -> str:
        # redemption.discount_*: what the code does (points used at checkout are a fixed amount of their own size).
        reward, kind = redemption.reward, redemption.discount_kind
        if kind == "fixed" and reward.program.currency != settings.SHOP_CURRENCY:
            raise ValueError(
                f"Reward {reward.name!r} is in {reward.program.currency}; the shop sells in {settings.SHOP_CURRENCY}."
            )
        product = None
        if kind == "free_product":
            ref = reward.product_reference.strip()
            product = Product.objects.filter(slug=ref).first() or (
                Product.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
            )
            if product is None:
                raise ValueError(f"Reward {reward.name!r} names product {ref!r}, which the shop does not have.")
        discount = DiscountCode(
            kind=DISCOUNT_KINDS[kind],
            value=redemption.discount_value,
            product=product,
            min_order_value=redemption.discount_min_order_value,
            valid_until=redemption.expires_at,
            description=f"Loyalty reward “{reward.name}” (redemption {redemption.pk})"[:200],
        )
        for _attempt in range(5):  # a clash of two random codes is all but impossible; still, draw again
            discount.code = new_discount_code(prefix="LOY")
            discount.full_clean(validate_unique=False)
            try:
                with transaction.atomic():
                    discount.save(force_insert=True)
                return discount.code
            except IntegrityError:
                discount.pk = None
        raise RuntimeError("could not draw an unused discount code")

    # --- points at checkout: the cart's "Use my points" control ----------------------------

    def checkout_basket(self, *, request) -> CheckoutBasket | None:
        cart = Cart(request)
        if cart.is_empty():
            return None
        return CheckoutBasket(
            reference=cart.reference, total=cart.total, currency=settings.SHOP_CURRENCY, code=cart.discount_code
        )

    def checkout_attach_code(self, *, request, code: str | None) -> None:
        Cart(request).set_discount_code(code)  # checkout applies it; the customer never types it

    def discount_status(self, *, code: str) -> str | None:
        with transaction.atomic():
            # The lock waits for a checkout that is using the code right now.
            used_at = DiscountCode.objects.select_for_update().filter(code=code).values_list("used_at", flat=True)
            found = list(used_at)
        if not found:
            return None
        return DiscountStatus.USED if found[0] is not None else DiscountStatus.UNUSED

    def revoke_discount(self, *, code: str) -> bool:
        with transaction.atomic():
            discount = DiscountCode.objects.select_for_update().filter(code=code).first()
            if discount is None:
                return True
            # Held by an order that was cancelled (the shop frees its codes after telling loyalty): revocable.
            if discount.used_at is not None and not Order.objects.filter(
                pk=discount.order_id, status=Order.Status.CANCELLED
            ).exists():
                return False
            if discount.is_active:
                discount.is_active = False
                discount.save(update_fields=["is_active"])
            return True
