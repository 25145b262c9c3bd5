"""Points issued, redeemed, expired and reversed in a period, and the outstanding liability now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, Sum

from ...models import Member, PointsEntry, Program, Redemption
from .common import _CHECKOUT, _ISSUED, _REWARD_REDEEMED, ZERO, _Kind, _money, _ratio


@dataclass(frozen=True)
class PointsKpis:
    issued: int  # earn + bonus + positive adjustments
    redeemed: int  # redeem debits, as a positive number
    expired: int
    reversed: int  # taken back for refunds
    adjusted_out: int  # negative staff adjustments, as a positive number
    liability_points: int | None = None  # positive balances + points held by checkout codes now (None: not asked)
    liability: Decimal | None = None  # their value: balances x point value + the held codes' amounts
    checkout_points: int = 0  # points used at checkout on orders placed in the period
    checkout_value: Decimal = ZERO  # the money they took off those orders
    checkout_returned: int = 0  # of them, given back after refunds or cancellations since

    @property
    def redemption_rate(self) -> float | None:
        """Points spent (rewards and at checkout) / points issued in the period."""
        return _ratio(self.redeemed + self.checkout_points, self.issued)


def points_liability(*, program: Program) -> tuple[int, Decimal]:
    """Outstanding points now and what they are worth: positive member balances at the programme's
    point value, plus the points held by checkout codes not used yet (they become a discount of
    their amount, or come back to the balance). Two queries."""
    points = Member.objects.filter(program=program, balance__gt=0).aggregate(total=Sum("balance"))["total"] or 0
    held = Redemption.objects.filter(_CHECKOUT, program=program, status=Redemption.Status.ISSUED).aggregate(
        points=Sum("points"), amount=Sum("amount")
    )
    return points + (held["points"] or 0), program.money_value(points) + _money(held["amount"])


def points_kpis(*, program: Program, start: datetime, end: datetime, with_liability: bool = True) -> PointsKpis:
    """Ledger flows of the period (one query) and, with ``with_liability``, the current liability (one more)."""
    totals = PointsEntry.objects.filter(program=program, created_at__gte=start, created_at__lt=end).aggregate(
        issued=Sum("points", filter=_ISSUED),
        redeemed=Sum("points", filter=_REWARD_REDEEMED),
        expired=Sum("points", filter=Q(kind=_Kind.EXPIRE)),
        reversed=Sum("points", filter=Q(kind=_Kind.REVERSE)),
        adjusted_out=Sum("points", filter=Q(kind=_Kind.ADJUST, points__lt=0)),
    )
    liability_points, liability = points_liability(program=program) if with_liability else (None, None)
    # Used on an order: marked used by the order, or used and since given back by its cancellation.
    checkout = Redemption.objects.filter(
        _CHECKOUT, program=program, created_at__gte=start, created_at__lt=end, order_reference__gt=""
    ).aggregate(points=Sum("points"), amount=Sum("amount"), returned=Sum("points_returned"))
    return PointsKpis(
        issued=totals["issued"] or 0,
        redeemed=-(totals["redeemed"] or 0),
        expired=-(totals["expired"] or 0),
        reversed=-(totals["reversed"] or 0),
        adjusted_out=-(totals["adjusted_out"] or 0),
        liability_points=liability_points,
        liability=liability,
        checkout_points=checkout["points"] or 0,
        checkout_value=_money(checkout["amount"]),
        checkout_returned=checkout["returned"] or 0,
    )
