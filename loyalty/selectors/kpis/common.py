"""What every KPI shares: which orders count, who is a customer, money and ratio rounding."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Case, CharField, DecimalField, F, Q, QuerySet, Value, When
from django.db.models.functions import Cast, Concat, Lower

from ...models import PointsEntry, Purchase, Reward, Segment

CENT = Decimal("0.01")


ZERO = Decimal("0.00")


DAYS_PER_YEAR = Decimal(365)


#: Orders that count: paid, or paid and partly refunded (counted at their net amount).
COUNTED_STATUSES = Purchase.KEPT_STATUSES


#: A segment staff watch; "moved into at risk" counts members who entered it recently.
AT_RISK = Segment.AT_RISK.value


RECENT_MOVES = timedelta(days=7)


_MONEY = DecimalField(max_digits=14, decimal_places=2)


_NET = F("amount") - F("refunded_amount")


_Kind = PointsEntry.Kind


#: Points given back (an unused reward code, points taken off a checkout) are not newly issued.
_GIVEN_BACK = Q(kind=_Kind.ADJUST, idempotency_key__startswith="redemption:")
_ISSUED = (Q(kind__in=[_Kind.EARN, _Kind.BONUS]) | Q(kind=_Kind.ADJUST, points__gt=0)) & ~_GIVEN_BACK
#: Debits for points used at checkout (services.checkout_points): counted from the redemptions instead.
_REWARD_REDEEMED = (Q(kind=_Kind.REDEEM) & ~Q(idempotency_key__startswith="redeem:checkout:")) | (
    _GIVEN_BACK & ~Q(description__startswith="Checkout points returned")
)
#: Per month: points spent (rewards and checkout), net of points given back.
_SPENT = Q(kind=_Kind.REDEEM) | _GIVEN_BACK
_CHECKOUT = Q(reward__kind=Reward.Kind.POINTS_DISCOUNT)


def _money(value) -> Decimal:
    return (value or ZERO).quantize(CENT, rounding=ROUND_HALF_UP)


def _ratio(part, whole) -> float | None:
    return float(part) / float(whole) if whole else None


def _counted_purchases(program, start: datetime, end: datetime) -> QuerySet[Purchase]:
    return Purchase.objects.filter(
        program=program, status__in=COUNTED_STATUSES, occurred_at__gte=start, occurred_at__lt=end
    ).order_by()


def customer_key():
    """SQL for "who bought": ``m:<member id>``, ``g:<lower(email)>`` for guests, ``o:<purchase id>``
    for a guest order without an email (it cannot be matched to anyone)."""
    return Case(
        When(member__isnull=False, then=Concat(Value("m:"), Cast("member_id", CharField()))),
        When(email="", then=Concat(Value("o:"), Cast("pk", CharField()))),
        default=Concat(Value("g:"), Lower("email")),
        output_field=CharField(),
    )
