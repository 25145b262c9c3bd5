"""Every write loyalty makes goes through these functions (receivers, views, admin, tasks)."""

from .campaigns import (
    campaign_run,
    campaign_schedule_sync,
    member_unsubscribe,
    message_clicked,
    message_opened,
    message_resend,
    message_send,
    purchase_attribute,
)
from .checkout_points import (
    checkout_basket,
    checkout_token_issue,
    points_discount_apply,
    points_discount_quote,
    points_discount_remove,
)
from .codes import code_consume, code_issue, code_quote, code_release
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
from .privacy import member_erase
from .referrals import referral_code_for
from .rewards import redeem, redemption_cancel
from .rules import award_for_action, birthday_bonuses_award, profile_completed
from .tiers import tier_evaluate, tiers_recompute

__all__ = [
    "adjust_points",
    "award_for_action",
    "birthday_bonuses_award",
    "campaign_run",
    "campaign_schedule_sync",
    "checkout_basket",
    "checkout_token_issue",
    "code_consume",
    "code_issue",
    "code_quote",
    "code_release",
    "earn_for_purchase",
    "event_retry",
    "events_process_pending",
    "events_retry_unprocessed",
    "member_enroll",
    "member_erase",
    "member_unsubscribe",
    "message_clicked",
    "message_opened",
    "message_resend",
    "message_send",
    "points_credit",
    "points_debit",
    "points_discount_apply",
    "points_discount_quote",
    "points_discount_remove",
    "points_expire_due",
    "profile_completed",
    "program_for_event",
    "purchase_attribute",
    "record_order_event",
    "redeem",
    "redemption_cancel",
    "referral_code_for",
    "tier_evaluate",
    "tiers_recompute",
]
