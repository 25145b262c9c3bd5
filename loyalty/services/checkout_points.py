"""Points as money at checkout: a member pays part of an order with points, in the cart.

It rides on the reward-code machinery: the programme's *points discount* reward (``Reward``
with ``kind = "points_discount"``) says what a point is worth there, the step, the fewest
points and the caps; using points is a :class:`~loyalty.models.Redemption` of it for a chosen
number of points, whose code (the shop's, through the adapter, or loyalty's own) takes
exactly their value off the order. The customer never sees or types that code: the shop's
glue attaches it to the basket.

Public functions (keep these signatures):

- :func:`checkout_token_issue` ``(*, member, basket) -> str``: a signed token for one basket
  (the shop's basket or checkout id) of one member, valid ``CHECKOUT_POINTS_VALID_MINUTES``.
- :func:`points_discount_quote` ``(*, member, order_total, currency, basket="", at=None) ->
  PointsDiscountQuote``: the choices (balance, value, step, fewest and most points usable,
  what is used now) for a basket. Writes nothing.
- :func:`points_discount_apply` ``(*, member, checkout_token, points, order_total, currency,
  at=None) -> Redemption``: debit the points and issue the code, idempotent per checkout: the
  same points again return the same redemption (``replayed``), other points replace its code
  and give its points back, in one transaction.
- :func:`points_discount_remove` ``(*, member, checkout_token, at=None) -> Redemption | None``:
  the customer takes the points off the order; they come back.
- :func:`points_discount_order_cancelled` and :func:`points_discount_order_refunded`: what an
  order's cancellation or refund does to points used on it (called by the events service).

Every refusal is a :class:`~loyalty.exceptions.LoyaltyError` with a stable ``code`` and
writes nothing. Lock order, as for every redemption: the member, then the redemption.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from django.core import signing
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..conf import loyalty_settings
from ..exceptions import InsufficientPoints, InvalidPointsAmount, PointsDiscountRefused, TierTooLow
from ..formats import money_text
from ..models import Member, PointsEntry, Program, Purchase, Redemption, Reward, RewardCode, Tier
from ..selectors import CHECKOUT_GIVEN_BACK
from .ledger import points_credit, points_debit

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


# --- the checkout token ----------------------------------------------------------------------


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


# --- the quote ---------------------------------------------------------------------------------


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


# --- apply and remove --------------------------------------------------------------------------


def _check_points(points) -> int:
    if isinstance(points, bool) or not isinstance(points, (int, Decimal)):
        raise InvalidPointsAmount(_("Enter a whole number of points."), code="points_not_whole")
    if isinstance(points, Decimal):
        if not points.is_finite() or points != points.to_integral_value():
            raise InvalidPointsAmount(_("Enter a whole number of points."), code="points_not_whole")
        points = int(points)
    if points <= 0:
        raise InvalidPointsAmount(_("Enter a number of points greater than zero."), code="points_not_positive")
    return points


def _revoke(redemption: Redemption, *, order_reference: str = "") -> bool:
    """Make the redemption's code unusable; ``False`` when it cannot be (used by a live order,
    or the shop cannot revoke codes). With ``order_reference``: a code of loyalty's own that
    this (cancelled) order used is revoked too."""
    code = RewardCode.objects.select_for_update().filter(redemption_id=redemption.pk).first()
    if code is not None:
        if code.status == RewardCode.Status.USED and (not order_reference or code.order_reference != order_reference):
            return False
        if code.status != RewardCode.Status.REVOKED:
            code.status, code.order_reference, code.used_at, code.discount = RewardCode.Status.REVOKED, "", None, None
            code.save(update_fields=["status", "order_reference", "used_at", "discount"])
        return True
    if not redemption.code:
        return True
    from .rewards import _adapter

    adapter = _adapter()
    if adapter is None:
        return False
    try:
        with transaction.atomic():
            return bool(adapter.revoke_discount(code=redemption.code))
    except NotImplementedError:
        return False


def _give_back(redemption: Redemption, member: Member, *, points: int, key: str, why: str, at: datetime) -> None:
    if points <= 0:
        return
    points_credit(
        member=member,
        points=points,
        kind=PointsEntry.Kind.ADJUST,
        idempotency_key=key,
        earned=False,
        reference=redemption.reward.name[:100],
        description=f"{GIVEN_BACK}: {why}"[:255],
        at=at,
        locked=True,
    )


def _close(redemption: Redemption, member: Member, *, why: str, at: datetime) -> None:
    """Cancel a checkout's redemption and give back what of its points is still spent."""
    owed = redemption.points - redemption.points_returned
    redemption.status, redemption.points_returned = Redemption.Status.CANCELLED, redemption.points
    redemption.save(update_fields=["status", "points_returned"])
    _give_back(
        redemption,
        member,
        points=owed,
        key=f"redemption:{redemption.pk}:refund",
        why=why,
        at=at,
    )


def _completed() -> PointsDiscountRefused:
    return _refuse(
        _("The points of this checkout were used on an order already; start a new order to use more."),
        "checkout_completed",
    )


def points_discount_apply(
    *,
    member: Member,
    checkout_token: str,
    points: int,
    order_total: Decimal,
    currency: str,
    at: datetime | None = None,
) -> Redemption:
    """Use ``points`` on the checkout ``checkout_token`` names, for an order of ``order_total``
    in ``currency``: debit them and issue a single-use code for their value (``redemption.code``,
    ``redemption.amount``), valid ``CHECKOUT_POINTS_VALID_MINUTES``, for this member only where
    the shop's discount model allows it.

    Idempotent per checkout: the same points again (a double press, a second tab) return the
    same redemption with ``replayed`` set; other points cancel its code, give its points back
    and issue a new one, in one transaction. Refusals (nothing written): ``points_not_whole``,
    ``points_not_positive``, ``points_not_in_step``, ``points_below_minimum``
    (:class:`InvalidPointsAmount`), ``insufficient_points``, ``points_above_cap``,
    ``below_minimum``, ``wrong_currency``, ``points_discount_unavailable``, ``tier_too_low``,
    the token's refusals, ``checkout_completed`` (its code was used on an order), and
    ``discount_not_issued`` when the shop cannot make the code.
    """
    from .rewards import _issue_code

    points = _check_points(points)
    at = at or timezone.now()
    basket = checkout_basket(member=member, checkout_token=checkout_token)
    with transaction.atomic():
        member = Member.objects.select_for_update().select_related("program").get(pk=member.pk)
        program = member.program
        _check_order(order_total, currency, program)
        reward = points_discount_reward(member=member, at=at)
        if points % reward.points_step:
            raise InvalidPointsAmount(
                _("Choose points in steps of %(step)s.") % {"step": reward.points_step},
                code="points_not_in_step",
                extra={"step": reward.points_step},
            )
        if points < reward.points_cost:
            raise InvalidPointsAmount(
                _("Use at least %(count)s points.") % {"count": reward.points_cost},
                code="points_below_minimum",
                extra={"minimum": reward.points_cost},
            )
        live = _live(member, basket, lock=True)
        if live is not None and live.points == points and live.reward_id == reward.pk:
            if live.status == Redemption.Status.USED or live.expires_at > at:
                live.replayed = True
                return live
        if live is not None and live.status == Redemption.Status.USED:
            raise _completed()
        if reward.min_order_value is not None and order_total < reward.min_order_value:
            raise _refuse(
                _("Points can pay for orders of %(minimum)s or more.")
                % {"minimum": money_text(reward.min_order_value, program.currency)},
                "below_minimum",
                min_order_value=str(reward.min_order_value),
            )
        available = member.balance + (live.points if live is not None else 0)
        if points > available:
            raise InsufficientPoints(
                _("You have %(balance)s points; you cannot use %(points)s.")
                % {"balance": max(available, 0), "points": points},
                extra={"balance": available, "requested": points},
            )
        value = _point_value(reward, program)
        cap = _cap(reward, order_total)
        by_cap, _usable = _max_points(reward, value, cap, available)
        if points > by_cap:
            raise _refuse(
                _("At most %(points)s points (%(amount)s) can pay for this order.")
                % {"points": by_cap, "amount": money_text(points_amount(by_cap, value), program.currency)},
                "points_above_cap",
                max_points=by_cap,
            )
        if live is not None:
            if not _revoke(live):
                raise _completed()
            _close(live, member, why="changed at checkout", at=at)
        amount = points_amount(points, value)
        number = Redemption.objects.filter(member=member, checkout_key=basket).count() + 1
        key = f"checkout:{member.pk}:{basket}:{number}"
        entry = points_debit(
            member=member,
            points=points,
            kind=PointsEntry.Kind.REDEEM,
            idempotency_key=f"redeem:{key}",
            reference=f"{amount} {program.currency}",
            description=f"Paid with {points} points (-{amount} {program.currency})",
            at=at,
            locked=True,
        )
        redemption = Redemption(
            program_id=program.pk,
            member=member,
            reward=reward,
            points=points,
            entry=entry,
            idempotency_key=key,
            status=Redemption.Status.ISSUED,
            expires_at=at + valid_for(),
            created_at=at,
            amount=amount,
            checkout_key=basket,
        )
        redemption.save(force_insert=True)
        redemption.code = _issue_code(redemption)
        redemption.save(update_fields=["code"])
        redemption.replayed = False
        return redemption


def points_discount_remove(*, member: Member, checkout_token: str, at: datetime | None = None) -> Redemption | None:
    """The customer takes the points off this checkout: the code stops working and the points
    come back. ``None`` when the checkout uses none (removing twice changes nothing);
    ``checkout_completed`` when its code was used on an order."""
    at = at or timezone.now()
    basket = checkout_basket(member=member, checkout_token=checkout_token)
    with transaction.atomic():
        member = Member.objects.select_for_update().select_related("program").get(pk=member.pk)
        live = _live(member, basket, lock=True)
        if live is None:
            return None
        if live.status == Redemption.Status.USED or not _revoke(live):
            raise _completed()
        _close(live, member, why="removed at checkout", at=at)
        return live


def points_discount_live(*, member: Member, basket: str) -> Redemption | None:
    """The checkout's code that works or was used, if any (one query)."""
    return _live(member, basket)


# --- the order's fate --------------------------------------------------------------------------


def _checkout_redemptions(program: Program) -> Q:
    return Q(program=program, reward__kind=Reward.Kind.POINTS_DISCOUNT)


def points_discount_order_cancelled(
    *, program: Program, order_reference: str, codes: Iterable[str] = (), at: datetime | None = None
) -> int:
    """The order was cancelled before fulfilment: points used on it come back (what refunds did
    not return already), and a code it held but never paid with stops working. ``codes``: the
    order's discount codes (an unpaid order's code is not marked used). Returns the points given
    back; a second call gives none."""
    at = at or timezone.now()
    wanted = {c.strip() for c in codes if c and c.strip()}
    wanted |= {c.upper() for c in wanted}
    match = Q(status=Redemption.Status.USED, order_reference=order_reference)
    if wanted:
        match |= Q(status=Redemption.Status.ISSUED, code__in=sorted(wanted))
    rows = list(
        Redemption.objects.filter(_checkout_redemptions(program) & match).order_by("pk").values_list("pk", "member_id")
    )
    returned = 0
    for redemption_id, member_id in rows:
        with transaction.atomic():
            member = Member.objects.select_for_update().select_related("program").get(pk=member_id)
            redemption = (
                Redemption.objects.select_for_update(of=("self",)).select_related("reward").get(pk=redemption_id)
            )
            if redemption.status not in LIVE:
                continue
            revoked = _revoke(redemption, order_reference=order_reference)
            if not revoked and redemption.status == Redemption.Status.ISSUED:
                logger.info("Code of redemption %s cannot be revoked; the expiry task settles it.", redemption.pk)
                continue
            owed = redemption.points - redemption.points_returned
            _close(redemption, member, why=f"order {order_reference} cancelled", at=at)
            returned += owed
    return returned


def points_discount_order_refunded(*, purchase: Purchase, at: datetime | None = None) -> int:
    """After a refund of ``purchase`` (its ``refunded_amount`` already counts it): points used on
    the order come back pro rata (``refunded_amount / amount`` of them, rounded down, cumulative
    so rounding never drifts) under the programme's ``PRO_RATA`` policy, all of them on a full
    refund under either policy. Returns the points given back by this call."""
    at = at or timezone.now()
    program = purchase.program
    fully = purchase.refunded_amount >= purchase.amount
    if not fully and program.checkout_points_refund_policy != Program.CheckoutRefundPolicy.PRO_RATA:
        return 0
    rows = list(
        Redemption.objects.filter(
            _checkout_redemptions(program), status=Redemption.Status.USED, order_reference=purchase.order_reference
        )
        .order_by("pk")
        .values_list("pk", "member_id")
    )
    returned = 0
    for redemption_id, member_id in rows:
        with transaction.atomic():
            member = Member.objects.select_for_update().select_related("program").get(pk=member_id)
            redemption = (
                Redemption.objects.select_for_update(of=("self",)).select_related("reward").get(pk=redemption_id)
            )
            if redemption.status != Redemption.Status.USED:
                continue
            if fully or purchase.amount <= 0:
                target = redemption.points
            else:
                share = Decimal(redemption.points) * purchase.refunded_amount / purchase.amount
                target = min(int(share.to_integral_value(rounding=ROUND_FLOOR)), redemption.points)
            owed = target - redemption.points_returned
            if owed <= 0:
                continue
            _give_back(
                redemption,
                member,
                points=owed,
                key=f"redemption:{redemption.pk}:returned:{target}",
                why=f"order {purchase.order_reference} refunded",
                at=at,
            )
            redemption.points_returned = target
            redemption.save(update_fields=["points_returned"])
            returned += owed
    return returned
