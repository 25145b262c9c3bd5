"""Loyalty's tables, one module per area: ``programs`` (programmes), ``members``, ``ledger``
(points entries, the lots), ``purchases``, ``events`` (the order-event inbox), ``tiers`` (tiers, tier changes),
``rules`` (earning rules), ``rewards`` (rewards, redemptions, referrals, pending points),
``codes`` (loyalty's own reward codes), ``campaigns`` (campaigns, messages), ``health``
(customer health, fits, runs, settings, segment changes), ``surveys``, ``emails`` (receipts)
and ``outbox`` (outbound emails). Every model is importable from ``loyalty.models``."""

from .campaigns import Campaign, Message
from .codes import RewardCode
from .emails import EmailReceipt
from .events import OrderEvent
from .health import CustomerHealth, HealthModelFit, HealthRun, HealthSettings, Segment, SegmentChange
from .ledger import PointsEntry
from .members import Member
from .outbox import OutboundEmail
from .programs import Program
from .purchases import Purchase
from .rewards import PendingPoints, Redemption, Referral, Reward
from .rules import EarningRule
from .surveys import Survey, SurveyInvitation, SurveyResponse
from .tiers import Tier, TierChange

__all__ = [
    "Campaign",
    "CustomerHealth",
    "EmailReceipt",
    "HealthModelFit",
    "HealthRun",
    "HealthSettings",
    "Message",
    "Segment",
    "Survey",
    "SurveyInvitation",
    "SurveyResponse",
    "SegmentChange",
    "EarningRule",
    "Member",
    "OrderEvent",
    "OutboundEmail",
    "PendingPoints",
    "PointsEntry",
    "Program",
    "Purchase",
    "Redemption",
    "Referral",
    "Reward",
    "RewardCode",
    "Tier",
    "TierChange",
]
