"""Using points on a basket and taking them off: debit and issue the code (idempotent per checkout),
replace it when the points change, give the points back when removed. Lock order: the member, then
the redemption."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ...exceptions import InsufficientPoints, InvalidPointsAmount, PointsDiscountRefused
from ...formats import money_text
from ...models import Member, PointsEntry, Redemption, Reward, RewardCode
from ..ledger import points_credit, points_debit
from .quote import (
    GIVEN_BACK,
    _cap,
    _check_order,
    _live,
    _max_points,
    _point_value,
    _refuse,
    checkout_basket,
    points_amount,
    points_discount_reward,
    valid_for,
)


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
    from ..rewards import _adapter

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
    from ..rewards import _issue_code

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


def points_discount_release(*, basket: str, code: str, at: datetime | None = None) -> Redemption | None:
    """The shop took the points code ``code`` off the checkout ``basket`` by itself (its own
    "Remove" button, not loyalty's control): as with :func:`points_discount_remove`, the code
    stops working and the points come back at once. ``None``, writing nothing, when ``code`` is
    no live points code of that checkout: another discount, a code given back already (a second
    removal, an expiry: the points come back once), or one an order used."""
    at = at or timezone.now()
    found = (
        Redemption.objects.filter(
            checkout_key=basket,
            code=code,
            status=Redemption.Status.ISSUED,
            reward__kind=Reward.Kind.POINTS_DISCOUNT,
        )
        .values_list("pk", "member_id")
        .first()
    )
    if found is None:
        return None
    from ..rewards import issued_redemption_locked

    redemption_id, member_id = found
    with transaction.atomic():
        member, live = issued_redemption_locked(member_id=member_id, redemption_id=redemption_id)
        if live is None or not _revoke(live):  # given back or used meanwhile
            return None
        _close(live, member, why="removed from the basket", at=at)
        return live


def points_discount_live(*, member: Member, basket: str) -> Redemption | None:
    """The checkout's code that works or was used, if any (one query)."""
    return _live(member, basket)
