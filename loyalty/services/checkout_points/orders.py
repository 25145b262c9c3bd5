"""What an order's cancellation or refund does to the points used on it (called by the events service)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ...models import Member, Program, Purchase, Redemption, Reward
from .apply import _close, _give_back, _revoke
from .quote import LIVE, logger


def _checkout_redemptions(program: Program) -> Q:
    return Q(program=program, reward__kind=Reward.Kind.POINTS_DISCOUNT)


def _locked(member_id: int, redemption_id: int) -> tuple[Member, Redemption]:
    """The member, then the redemption, locked in that order (the order every redemption takes)."""
    member = Member.objects.select_for_update().select_related("program").get(pk=member_id)
    redemption = Redemption.objects.select_for_update(of=("self",)).select_related("reward").get(pk=redemption_id)
    return member, redemption


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
            member, redemption = _locked(member_id, redemption_id)
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
            member, redemption = _locked(member_id, redemption_id)
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
