"""The demo shop's loyalty adapter: the example to copy into your own project.

It is the only place that knows both sides: it listens to the shop's order signals and
describes each one as a loyalty ``OrderEvent``. Twenty lines for a typical shop.
"""

from loyalty.adapters.base import BaseAdapter, EventKind, OrderEvent
from shop import signals
from shop.models import Order


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
