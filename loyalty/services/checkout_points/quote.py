"""The checkout token (one basket of one member, signed) and the quote: what the member may use
on a basket, in points and money, under the points discount reward's step, fewest points and caps."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from django.core import signing
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ...conf import loyalty_settings
from ...exceptions import PointsDiscountRefused, TierTooLow
from ...formats import money_text
from ...models import Member, Program, Redemption, Reward, Tier
from ...selectors import CHECKOUT_GIVEN_BACK

logger = logging.getLogger("loyalty.checkout_points")


CENT = Decimal("0.01")


TOKEN_SALT = "loyalty.checkout-points"


BASKET_MAX_LENGTH = 80  # keys "checkout:<member>:<basket>:<n>" stay far below the ledger's 200


#: Most choices a quote lists (a form's drop-down); above it, a form asks for a number.
MAX_OPTIONS = 40


#: Ledger descriptions of points given back start with this (``selectors.history_row`` reads it).
GIVEN_BACK = CHECKOUT_GIVEN_BACK


LIVE = (Redemption.Status.ISSUED, Redemption.Status.USED)


def _refuse(message: str, code: str, **extra) -> PointsDiscountRefused:
    return PointsDiscountRefused(message, code=code, extra=extra)


def valid_for() -> timedelta:
    """How long a checkout token and a checkout code work (``CHECKOUT_POINTS_VALID_MINUTES``)."""
    return timedelta(minutes=int(loyalty_settings.CHECKOUT_POINTS_VALID_MINUTES))


def checkout_token_issue(*, member: Member, basket: str) -> str:
    """A signed token naming ``member`` and ``basket`` (the shop's id of one basket or checkout,
    1 to 80 characters): what :func:`points_discount_apply` takes. Pages and API clients get
    it with the quote; the same basket gives the same checkout whatever token of it comes
    back, so two tabs share one."""
    basket = str(basket or "").strip()
    if not basket or len(basket) > BASKET_MAX_LENGTH:
        raise ValueError(f"basket must be 1 to {BASKET_MAX_LENGTH} characters, not {basket!r}")
    return signing.dumps({"m": member.pk, "b": basket}, salt=TOKEN_SALT, compress=True)


def _unknown_checkout() -> PointsDiscountRefused:
    return _refuse(_("This checkout is not known: reload the page and try again."), "checkout_token_invalid")


def checkout_basket(*, member: Member, checkout_token: str) -> str:
    """The basket a token of ``member`` names, or a refusal: ``checkout_token_invalid``
    (not one of ours, or altered), ``checkout_token_expired``, ``checkout_token_foreign``
    (another member's)."""
    try:
        data = signing.loads(str(checkout_token or ""), salt=TOKEN_SALT, max_age=valid_for())
    except signing.SignatureExpired:
        raise _refuse(
            _("This checkout has expired: reload the page and choose your points again."), "checkout_token_expired"
        ) from None
    except signing.BadSignature:
        raise _unknown_checkout() from None
    if not isinstance(data, dict) or not isinstance(data.get("b"), str):
        raise _unknown_checkout()
    if data.get("m") != member.pk:
        raise _refuse(_("This checkout belongs to another customer."), "checkout_token_foreign")
    return data["b"]


@dataclass(frozen=True)
class PointsOption:
    points: int
    amount: Decimal


@dataclass(frozen=True)
class PointsDiscountQuote:
    """What a member may use on one basket. ``max_points`` 0: nothing now, ``refusal`` says why
    (``insufficient_points``, ``below_minimum``, ``points_above_cap``: the order is too small
    for the fewest points). ``balance`` counts the points this checkout's code holds, since
    choosing again gives them back first. ``applied``: this checkout's live code, if any."""

    reward: Reward
    currency: str
    order_total: Decimal
    balance: int
    point_value: Decimal
    step: int
    min_points: int
    max_points: int
    refusal: str = ""
    message: str = ""
    applied: Redemption | None = None
    checkout_token: str = ""

    def amount_for(self, points: int) -> Decimal:
        return points_amount(points, self.point_value)

    @property
    def max_amount(self) -> Decimal:
        return self.amount_for(self.max_points)

    @property
    def balance_amount(self) -> Decimal:
        return self.amount_for(max(self.balance, 0))

    @property
    def options(self) -> list[PointsOption]:
        """Every choice from the fewest to the most points, when there are at most ``MAX_OPTIONS``."""
        if not self.max_points or (self.max_points - self.min_points) // self.step >= MAX_OPTIONS:
            return []
        return [PointsOption(p, self.amount_for(p)) for p in range(self.min_points, self.max_points + 1, self.step)]


def points_amount(points: int, point_value: Decimal) -> Decimal:
    """The money ``points`` take off: rounded down to the cent, so never more than they are worth."""
    return (Decimal(points) * point_value).quantize(CENT, rounding=ROUND_FLOOR)


def _point_value(reward: Reward, program: Program) -> Decimal:
    return reward.point_value or program.point_value


def _cap(reward: Reward, order_total: Decimal) -> Decimal:
    """The most money points may take off an order of ``order_total``."""
    cap = order_total
    if reward.max_order_share:
        cap = min(cap, (order_total * reward.max_order_share / 100).quantize(CENT, rounding=ROUND_FLOOR))
    if reward.max_amount:
        cap = min(cap, reward.max_amount)
    return max(cap, Decimal("0.00"))


def _max_points(reward: Reward, value: Decimal, cap: Decimal, available: int) -> tuple[int, int]:
    """(most points the caps allow, most points usable), both whole steps."""
    step = reward.points_step
    by_cap = int((cap / value).to_integral_value(rounding=ROUND_FLOOR)) if value > 0 else 0
    by_cap -= by_cap % step
    usable = min(by_cap, max(available, 0))
    usable -= usable % step
    return by_cap, usable if usable >= reward.points_cost else 0


def _check_order(order_total: Decimal, currency: str, program: Program) -> None:
    if not isinstance(order_total, Decimal) or not order_total.is_finite() or order_total < 0:
        raise ValueError(f"order_total must be a Decimal >= 0, not {order_total!r}")
    if str(currency or "").upper() != program.currency:
        raise _refuse(
            _("Points can only pay for orders in %(currency)s.") % {"currency": program.currency},
            "wrong_currency",
            currency=program.currency,
        )


def points_discount_reward(*, member: Member, at: datetime | None = None) -> Reward:
    """The points discount the member may use now: of the programme's active ones, those their
    tier allows, the one whose points are worth most. Refusals: ``points_discount_unavailable``
    (the programme has none now), :class:`TierTooLow`."""
    at = at or timezone.now()
    rewards = list(
        Reward.objects.filter(program_id=member.program_id, kind=Reward.Kind.POINTS_DISCOUNT, is_active=True)
        .filter(Q(active_from__isnull=True) | Q(active_from__lte=at))
        .filter(Q(active_until__isnull=True) | Q(active_until__gt=at))
        .select_related("min_tier")
        .order_by("pk")
    )
    if not rewards:
        raise _refuse(_("Points cannot pay for orders at the moment."), "points_discount_unavailable")
    rank = Tier.objects.filter(pk=member.tier_id).values_list("rank", flat=True).first() if member.tier_id else None
    allowed = [r for r in rewards if r.min_tier_id is None or (rank is not None and rank >= r.min_tier.rank)]
    if not allowed:
        needed = min((r.min_tier for r in rewards), key=lambda tier: tier.rank)
        raise TierTooLow(
            _("Paying with points is for %(tier)s members and above.") % {"tier": needed.name},
            extra={"min_tier": needed.name},
        )
    program = member.program
    return max(allowed, key=lambda r: (_point_value(r, program), -r.pk))


def _live(member: Member, basket: str, *, lock: bool = False) -> Redemption | None:
    rows = Redemption.objects.filter(member=member, checkout_key=basket, status__in=LIVE).select_related("reward")
    if lock:
        rows = rows.select_for_update(of=("self",))
    return rows.first()


def points_discount_quote(
    *, member: Member, order_total: Decimal, currency: str, basket: str = "", at: datetime | None = None
) -> PointsDiscountQuote:
    """The choices for an order of ``order_total`` (the goods, before loyalty's discount) in
    ``currency``. With ``basket`` (the shop's basket id) it reports what this checkout uses now
    and carries the ``checkout_token`` to apply with. Raises ``wrong_currency``,
    ``points_discount_unavailable`` or :class:`TierTooLow`; a member who cannot use points on
    this order gets ``max_points == 0`` and a ``refusal``. Writes nothing (a few queries)."""
    at = at or timezone.now()
    program = member.program
    _check_order(order_total, currency, program)
    reward = points_discount_reward(member=member, at=at)
    applied = _live(member, basket) if basket else None
    held = applied.points if applied is not None and applied.status == Redemption.Status.ISSUED else 0
    available = max(member.balance, 0) + held
    value = _point_value(reward, program)
    by_cap, usable = _max_points(reward, value, _cap(reward, order_total), available)
    refusal, message = "", ""
    if reward.min_order_value is not None and order_total < reward.min_order_value:
        refusal, usable = "below_minimum", 0
        message = _("Points can pay for orders of %(minimum)s or more.") % {
            "minimum": money_text(reward.min_order_value, program.currency)
        }
    elif available < reward.points_cost:
        refusal = "insufficient_points"
        message = ngettext(
            "You need at least %(count)s point to pay with points.",
            "You need at least %(count)s points to pay with points.",
            reward.points_cost,
        ) % {"count": reward.points_cost}
    elif not usable:
        refusal = "points_above_cap"
        message = _("This order is too small to pay part of it with points.")
    return PointsDiscountQuote(
        reward=reward,
        currency=program.currency,
        order_total=order_total,
        balance=available,
        point_value=value,
        step=reward.points_step,
        min_points=reward.points_cost,
        max_points=usable,
        refusal=refusal,
        message=message,
        applied=applied,
        checkout_token=checkout_token_issue(member=member, basket=basket) if basket else "",
    )
