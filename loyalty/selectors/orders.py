"""Points of one order for the confirmation page, and what a guest's purchase would earn once claimed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from ..models import Purchase


@dataclass(frozen=True)
class OrderPoints:
    """What the order confirmation page says about points: earned, pending, or what a guest would earn."""

    program: object
    points: int
    status: str  # "earned", "pending", "guest", "none"
    pending_until: datetime | None = None


def order_points(*, order_reference: str, user=None) -> OrderPoints | None:
    """Points of the order ``order_reference`` (one query); ``None`` when loyalty knows no paid
    purchase of it. A guest's purchase (no member) reports the points joining would bring, net of
    refunds, for visitors who are not signed in; a member's only to that member's user."""
    purchase = (
        Purchase.objects.filter(order_reference=order_reference, program__is_active=True)
        .select_related("program", "member", "pending")
        .order_by("program_id")
        .first()
    )
    if purchase is None:
        return None
    program = purchase.program
    if purchase.member_id is None:
        if getattr(user, "is_authenticated", False):
            return None  # signed in: claiming happens at registration, nothing to offer here
        points = guest_points_for(purchase)
        return OrderPoints(program, points, "guest" if points else "none")
    if not getattr(user, "is_authenticated", False) or purchase.member.user_id != user.pk:
        return None
    pending = getattr(purchase, "pending", None)
    if pending is not None and pending.status == pending.Status.PENDING:
        return OrderPoints(program, pending.points, "pending", pending.approve_at)
    points = purchase.points_earned - purchase.points_reversed
    return OrderPoints(program, points, "earned" if points > 0 else "none")


def guest_points_for(purchase: Purchase) -> int:
    """What a guest's purchase is worth once claimed: the base rate (and any multiplier campaign
    of the day) on the amount, less what refunds took back; nothing when refunded or cancelled."""
    if purchase.status in (Purchase.Status.REFUNDED, Purchase.Status.CANCELLED):
        return 0
    earned = guest_points_earned(purchase)
    return earned - guest_points_reversed(purchase, earned)


def guest_points_earned(purchase: Purchase) -> int:
    """What the purchase earned before refunds, had the buyer been a member (base rate x campaigns)."""
    from ..config_cache import program_config

    program = purchase.program
    multiplier = program_config(program).campaign_multiplier(amount=purchase.amount, at=purchase.occurred_at)
    return program.points_for(purchase.amount, multiplier=multiplier)


def guest_points_reversed(purchase: Purchase, earned: int) -> int:
    """Points refunds take back of ``earned``: pro rata, rounded down (as for members' refunds)."""
    if purchase.amount <= 0 or not purchase.refunded_amount:
        return 0
    share = Decimal(earned) * purchase.refunded_amount / purchase.amount
    return min(int(share.to_integral_value(rounding=ROUND_FLOOR)), earned)
