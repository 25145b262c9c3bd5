"""Every write loyalty makes goes through these functions (receivers, views, admin, tasks)."""

from .events import (
    earn_for_purchase,
    event_retry,
    events_process_pending,
    events_retry_unprocessed,
    record_order_event,
)
from .expiry import points_expire_due
from .ledger import adjust_points, points_credit, points_debit
from .members import member_enroll, program_for_event

__all__ = [
    "adjust_points",
    "earn_for_purchase",
    "event_retry",
    "events_process_pending",
    "events_retry_unprocessed",
    "member_enroll",
    "points_credit",
    "points_debit",
    "points_expire_due",
    "program_for_event",
    "record_order_event",
]
