"""Writes: every change loyalty makes goes through these functions, named ``<entity>_<action>``;
receivers, views, admin, the API, tasks and commands call them.

What lives here: ``events`` (the order-event inbox and its processing), ``award`` (a paid order
in one statement on PostgreSQL), ``award_batch`` (deferred events in set-based batches),
``order_points`` (what a paid order earns, shared by both), ``ledger`` (credits, debits,
adjustments), ``expiry``, ``pending`` (points waiting out the approval period), ``members``
(enrolment, which programme), ``tiers``, ``rules`` (bonus rules), ``referrals``, ``rewards``
(redemptions), ``codes`` (loyalty's own reward codes), ``guests`` (claiming guest orders),
``notifications`` (member emails), ``preferences`` (marketing consent), ``privacy`` (erasure),
``staff`` (the staff policy), ``identity`` (email addresses as mailboxes), ``surveys`` and
``feedback``, ``bulk`` (many-row updates), ``backfill`` (past orders), and the packages
``outbox/`` (every email), ``campaigns/`` and ``health/``. The names below are re-exported here.
"""

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
    points_discount_release,
    points_discount_remove,
)
from .codes import code_consume, code_issue, code_quote, code_release
from .events import (
    earn_for_purchase,
    event_retry,
    events_process_pending,
    events_retry_unprocessed,
    order_event_record,
)
from .expiry import points_expire_due
from .ledger import points_adjust, points_credit, points_debit
from .members import member_enroll, program_for_event
from .privacy import member_erase
from .referrals import referral_code_for
from .rewards import redemption_cancel, reward_redeem
from .rules import award_for_action, birthday_bonuses_award, profile_completed
from .tiers import tier_evaluate, tiers_recompute

# Old names, kept because docs/ showed them to integrators (docs/upgrading.md, "Renamed services"):
adjust_points = points_adjust  # old name of points_adjust
record_order_event = order_event_record  # old name of order_event_record
redeem = reward_redeem  # old name of reward_redeem

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
    "order_event_record",
    "points_adjust",
    "points_credit",
    "points_debit",
    "points_discount_apply",
    "points_discount_quote",
    "points_discount_release",
    "points_discount_remove",
    "points_expire_due",
    "profile_completed",
    "program_for_event",
    "purchase_attribute",
    "record_order_event",
    "redeem",
    "redemption_cancel",
    "referral_code_for",
    "reward_redeem",
    "tier_evaluate",
    "tiers_recompute",
]
