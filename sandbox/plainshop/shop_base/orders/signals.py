from django.dispatch import Signal

payment_received = Signal()  # order
order_voided = Signal()  # order, was_paid
money_returned = Signal()  # order, amount (the shop keeps no refund rows: only the running total)
