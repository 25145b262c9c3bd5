"""Signals the shop sends when an order changes state.

They are sent inside the database transaction that changes the order, so a receiver that
writes rows (an inbox, say) commits or rolls back together with the order.

- ``order_paid(sender=Order, order)``
- ``order_cancelled(sender=Order, order, was_paid)``
- ``order_refunded(sender=Order, order, refund, amount)``: ``amount`` is this refund's
  amount (Decimal), ``order.refunded_total`` the running total.
"""

from django.dispatch import Signal

order_paid = Signal()
order_cancelled = Signal()
order_refunded = Signal()
