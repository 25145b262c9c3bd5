"""The demo shop's loyalty adapter: the example to copy into your own project.

It is the only place that knows both sides: it listens to the shop's order signals,
describes each one as a loyalty ``OrderEvent``, and it turns a redeemed loyalty reward into
one of the shop's own ``DiscountCode`` rows. Twenty lines each for a typical shop.
"""

from django.conf import settings
from django.db import IntegrityError, transaction

from loyalty.adapters.base import BaseAdapter, DiscountStatus, EventKind, OrderEvent
from shop import signals
from shop.models import DiscountCode, Order, Product, new_discount_code

# Loyalty's reward kinds are named like the shop's discount kinds; a shop with other names maps them here.
DISCOUNT_KINDS = {
    "fixed": DiscountCode.Kind.FIXED,
    "percent": DiscountCode.Kind.PERCENT,
    "free_shipping": DiscountCode.Kind.FREE_SHIPPING,
    "free_product": DiscountCode.Kind.FREE_PRODUCT,
}


class ShopAdapter(BaseAdapter):
    def connections(self):
        return [
            (signals.order_paid, self.order_paid),
            (signals.order_refunded, self.order_refunded),
            (signals.order_cancelled, self.order_cancelled),
        ]

    def _event(self, order: Order, kind: str, event_id: str, amount, occurred_at) -> OrderEvent:
        return OrderEvent(
            kind=kind,
            event_id=event_id,
            order_reference=order.number,
            amount=amount,
            currency=order.currency,
            occurred_at=occurred_at,
            user_id=order.user_id,
            email=order.email,
        )

    def order_paid(self, sender, order: Order, **kwargs) -> OrderEvent:
        return self._event(order, EventKind.PAID, f"order:{order.number}:paid", order.total, order.paid_at)

    def order_refunded(self, sender, order: Order, refund, amount, **kwargs) -> OrderEvent:
        return self._event(
            order, EventKind.REFUNDED, f"order:{order.number}:refund:{refund.pk}", amount, refund.created_at
        )

    def order_cancelled(self, sender, order: Order, **kwargs) -> OrderEvent:
        return self._event(
            order, EventKind.CANCELLED, f"order:{order.number}:cancelled", order.total, order.cancelled_at
        )

    # --- rewards -> the shop's discount codes ---------------------------------------------

    def issue_discount(self, *, redemption) -> str:
        reward = redemption.reward
        if reward.kind == "fixed" and reward.program.currency != settings.SHOP_CURRENCY:
            raise ValueError(
                f"Reward {reward.name!r} is in {reward.program.currency}; the shop sells in {settings.SHOP_CURRENCY}."
            )
        product = None
        if reward.kind == "free_product":
            ref = reward.product_reference.strip()
            product = Product.objects.filter(slug=ref).first() or (
                Product.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
            )
            if product is None:
                raise ValueError(f"Reward {reward.name!r} names product {ref!r}, which the shop does not have.")
        discount = DiscountCode(
            kind=DISCOUNT_KINDS[reward.kind],
            value=reward.value,
            product=product,
            min_order_value=reward.min_order_value,
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
            if discount.used_at is not None:
                return False
            if discount.is_active:
                discount.is_active = False
                discount.save(update_fields=["is_active"])
            return True
