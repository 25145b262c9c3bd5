from .events import OrderEvent
from .ledger import PointsEntry
from .members import Member
from .programs import Program
from .purchases import Purchase
from .rewards import PendingPoints, Redemption, Referral, Reward
from .rules import EarningRule
from .tiers import Tier, TierChange

__all__ = [
    "EarningRule",
    "Member",
    "OrderEvent",
    "PendingPoints",
    "PointsEntry",
    "Program",
    "Purchase",
    "Redemption",
    "Referral",
    "Reward",
    "Tier",
    "TierChange",
]
