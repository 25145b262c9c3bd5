"""Rewards and redemption: points become a discount code in the shop.

CONTRACT (keep these signatures):
- ``reward_redeem(*, member, reward, idempotency_key=None, free=False, at=None, valid_days=None,
  notify=True) -> Redemption``: ``free=True`` issues without points (tier entry rewards,
  campaign incentives), still idempotent by key.
- ``redemptions_expire_due(*, now=None) -> int``: daily task.
- ``redemption_cancel(*, redemption, by=None) -> Redemption``: staff; returns the points.

Every refusal is a :class:`~loyalty.exceptions.LoyaltyError` with a stable ``code`` and
writes nothing. The shop's code is issued through the adapter inside the transaction that
debits the points, so a shop that cannot issue it leaves the balance untouched.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import CharField, Exists, F, OuterRef, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..adapters.base import DiscountStatus
from ..conf import loyalty_settings
from ..exceptions import (
    DiscountNotIssued,
    InsufficientPoints,
    LoyaltyError,
    RedemptionLimitReached,
    RedemptionNotCancellable,
    RewardOutOfStock,
    RewardUnavailable,
    TierTooLow,
)
from ..models import EmailReceipt, Member, PointsEntry, Program, Redemption, Reward, Tier
from .codes import code_issue_for_redemption, code_revoke, code_status
from .ledger import points_credit, points_debit
from .notifications import member_email_queue

logger = logging.getLogger("loyalty.rewards")

KEY_MAX_LENGTH = 190  # the ledger key "redeem:<key>" must fit in 200
CODE_MAX_LENGTH = Redemption._meta.get_field("code").max_length
# Redemptions that count against a per-member limit: an expired or cancelled code gave nothing.
COUNTED_STATUSES = (Redemption.Status.ISSUED, Redemption.Status.USED)


def _adapter():
    from ..adapters import get_adapter

    return get_adapter()


def _check_available(*, member: Member, reward: Reward, at: datetime, free: bool) -> None:
    """Raise the first reason ``member`` cannot have ``reward`` now (both rows are locked)."""
    name = reward.name
    if reward.is_points_discount:
        raise RewardUnavailable(
            _("“%(reward)s” is used in the cart: choose how many points to use there.") % {"reward": name},
            code="reward_used_at_checkout",
        )
    if reward.program_id != member.program_id:
        raise RewardUnavailable(
            _("“%(reward)s” belongs to another programme.") % {"reward": name}, code="reward_other_program"
        )
    if not member.program.is_active:
        raise RewardUnavailable(_("The programme %(program)s is closed.") % {"program": member.program})
    if not reward.is_active:
        raise RewardUnavailable(_("“%(reward)s” is not available any more.") % {"reward": name})
    if reward.active_from is not None and at < reward.active_from:
        raise RewardUnavailable(
            _("“%(reward)s” is available from %(date)s.")
            % {"reward": name, "date": date_format(timezone.localtime(reward.active_from), "DATE_FORMAT")},
            extra={"active_from": reward.active_from.isoformat()},
        )
    if reward.active_until is not None and at >= reward.active_until:
        raise RewardUnavailable(
            _("“%(reward)s” was available until %(date)s.")
            % {"reward": name, "date": date_format(timezone.localtime(reward.active_until), "DATE_FORMAT")},
            extra={"active_until": reward.active_until.isoformat()},
        )
    if reward.stock is not None and reward.stock <= 0:
        raise RewardOutOfStock(_("“%(reward)s” is sold out.") % {"reward": name})
    if free:
        return  # granted (a tier's entry reward): no limit, tier or balance applies
    if reward.per_member_limit is not None:
        taken = Redemption.objects.filter(member=member, reward=reward, status__in=COUNTED_STATUSES).count()
        if taken >= reward.per_member_limit:
            raise RedemptionLimitReached(
                ngettext(
                    "“%(reward)s” can be redeemed %(limit)d time per member, and you have redeemed it.",
                    "“%(reward)s” can be redeemed %(limit)d times per member, "
                    "and you have redeemed it %(taken)d times.",
                    reward.per_member_limit,
                )
                % {"reward": name, "limit": reward.per_member_limit, "taken": taken},
                extra={"limit": reward.per_member_limit, "redeemed": taken},
            )
    if reward.min_tier_id is not None:
        needed = Tier.objects.only("name", "rank").get(pk=reward.min_tier_id)
        rank = Tier.objects.filter(pk=member.tier_id).values_list("rank", flat=True).first() if member.tier_id else None
        if rank is None or rank < needed.rank:
            raise TierTooLow(
                _("“%(reward)s” is for %(tier)s members and above.") % {"reward": name, "tier": needed.name},
                extra={"min_tier": needed.name},
            )
    if reward.points_cost > member.balance:
        raise InsufficientPoints(
            _("“%(reward)s” costs %(cost)d points; you have %(balance)d.")
            % {"reward": name, "cost": reward.points_cost, "balance": max(member.balance, 0)},
            extra={"balance": member.balance, "requested": reward.points_cost},
        )


def _existing(member: Member, reward: Reward, key: str) -> Redemption | None:
    found = Redemption.objects.filter(program_id=member.program_id, idempotency_key=key).first()
    if found is not None and (found.member_id != member.pk or found.reward_id != reward.pk):
        raise LoyaltyError(
            "This idempotency key was used for another redemption; use one key per member and reward request.",
            code="idempotency_key_conflict",
        )
    return found


def reward_redeem(
    *,
    member: Member,
    reward: Reward,
    idempotency_key: str | None = None,
    free: bool = False,
    at: datetime | None = None,
    valid_days: int | None = None,
    notify: bool = True,
    by=None,
) -> Redemption:
    """Spend the reward's points and issue its discount code in the shop.

    Pass ``idempotency_key`` (e.g. a token from the form the customer submitted): the same
    key again returns the first redemption instead of spending twice. Without one, every
    call redeems anew. ``free`` (a tier's entry reward) skips the points, the per-member
    limit and the minimum tier, but not availability and stock. ``valid_days`` overrides
    the reward's ``code_valid_days``; ``notify=False`` sends no "reward issued" email (a
    campaign email carries the code itself). ``by``: the staff user issuing it (free), held to
    the staff policy (``services.staff``: not their own membership, within their limit).
    The same key again returns the first redemption with ``redemption.replayed`` set, decided
    under the member's lock: of concurrent requests with one key exactly one creates.
    """
    key = idempotency_key or f"auto:{uuid.uuid4().hex}"
    if len(key) > KEY_MAX_LENGTH:
        raise ValueError(f"idempotency_key must be at most {KEY_MAX_LENGTH} characters")
    at = at or timezone.now()
    with transaction.atomic():
        # Lock order: member, then reward (its stock). Every redemption takes them this way.
        member = Member.objects.select_for_update().select_related("program").get(pk=member.pk)
        if (found := _existing(member, reward, key)) is not None:
            found.replayed = True
            return found
        reward = Reward.objects.select_for_update().get(pk=reward.pk)
        if by is not None and free:
            from .staff import staff_check_free_reward

            staff_check_free_reward(user=by, member=member, points_cost=reward.points_cost)
        _check_available(member=member, reward=reward, at=at, free=free)

        entry = None
        if not free:
            entry = points_debit(
                member=member,
                points=reward.points_cost,
                kind=PointsEntry.Kind.REDEEM,
                idempotency_key=f"redeem:{key}",
                reference=reward.name[:100],
                description=f"Redeemed for “{reward.name}”"[:255],
                at=at,
                locked=True,
            )
        if reward.stock is not None:
            Reward.objects.filter(pk=reward.pk).update(stock=F("stock") - 1)
            reward.stock -= 1
        redemption = Redemption(
            program_id=member.program_id,
            member=member,
            reward=reward,
            points=0 if free else reward.points_cost,
            entry=entry,
            idempotency_key=key,
            status=Redemption.Status.ISSUED,
            expires_at=at + timedelta(days=valid_days or reward.code_valid_days),
            created_at=at,
        )
        redemption.save(force_insert=True)

        redemption.code = _issue_code(redemption)
        redemption.save(update_fields=["code"])
        if not notify:
            return redemption
        member_email_queue(
            member=member,
            template="reward_issued",
            key=f"redemption:{redemption.pk}:issued",
            context={
                "redemption_id": redemption.pk,
                "reward": reward.name,
                "code": redemption.code,
                "expires_on": timezone.localdate(redemption.expires_at).isoformat(),
            },
        )
        return redemption


def _issue_code(redemption: Redemption) -> str:
    """Ask the shop for the code (or, with ``REWARD_CODES = "loyalty"``, make one of loyalty's
    own); any failure becomes :class:`DiscountNotIssued` (and rolls back)."""
    if loyalty_settings.REWARD_CODES == "loyalty":
        return code_issue_for_redemption(redemption=redemption)
    adapter = _adapter()
    if adapter is None:
        raise DiscountNotIssued(
            "No shop adapter is configured (LOYALTY['ADAPTER']), so no discount code can be issued."
        )
    try:
        with transaction.atomic():  # a database error in the adapter must not poison our transaction
            code = adapter.issue_discount(redemption=redemption)
    except NotImplementedError as exc:
        raise DiscountNotIssued(str(exc)) from exc
    except Exception as exc:
        logger.exception("The shop could not issue a discount code for redemption %s.", redemption.pk)
        raise DiscountNotIssued(
            _("The shop could not create your discount code right now; no points were taken. Please try again."),
            extra={"error": f"{type(exc).__name__}: {exc}"},
        ) from exc
    if not isinstance(code, str) or not code.strip() or len(code) > CODE_MAX_LENGTH:
        raise DiscountNotIssued(
            f"The adapter's issue_discount() must return a code of 1 to {CODE_MAX_LENGTH} characters, not {code!r}."
        )
    return code.strip()


# --- expiry and cancellation ----------------------------------------------------------------


def _refund(redemption: Redemption, member: Member, *, description: str, by=None, at: datetime) -> PointsEntry | None:
    """Undo a redemption that gave the customer nothing: its stock and its points come back.

    Called once per redemption, on its move from issued to expired or cancelled (under the
    row lock); the points key is shared by expiry and cancellation besides.
    """
    if redemption.reward.stock is not None:
        Reward.objects.filter(pk=redemption.reward_id).update(stock=F("stock") + 1)
    if not redemption.points:
        return None
    return points_credit(
        member=member,
        points=redemption.points,
        kind=PointsEntry.Kind.ADJUST,
        idempotency_key=f"redemption:{redemption.pk}:refund",
        earned=False,
        reference=redemption.reward.name[:100],
        description=description,
        created_by=by if by is not None and getattr(by, "is_authenticated", False) else None,
        at=at,
        locked=True,
    )


def issued_redemption_locked(*, member_id: int, redemption_id: int) -> tuple[Member, Redemption | None]:
    """The member, then the redemption if it is still issued, locked in that order (the order every
    redemption takes). Call inside a transaction; ``None`` when it was used, cancelled or expired meanwhile."""
    member = Member.objects.select_for_update().select_related("program").get(pk=member_id)
    redemption = (
        Redemption.objects.select_for_update(of=("self",))
        .select_related("reward")
        .filter(pk=redemption_id, status=Redemption.Status.ISSUED)
        .first()
    )
    return member, redemption


def _expire_one(*, redemption_id: int, member_id: int, adapter, now: datetime) -> str | None:
    with transaction.atomic():
        member, redemption = issued_redemption_locked(member_id=member_id, redemption_id=redemption_id)
        if redemption is None:  # cancelled or handled meanwhile
            return None
        status = code_status(redemption=redemption)  # loyalty's own code, if it has one
        if status is None and adapter is not None and redemption.code:
            status = adapter.discount_status(code=redemption.code)
        if status == DiscountStatus.USED:
            redemption.status, redemption.used_at = Redemption.Status.USED, redemption.used_at or now
            redemption.save(update_fields=["status", "used_at"])
            return "used"
        redemption.status = Redemption.Status.EXPIRED
        redemption.save(update_fields=["status"])
        checkout = redemption.reward.is_points_discount  # points used at checkout always come back
        if status == DiscountStatus.UNUSED and (checkout or member.program.refund_points_on_code_expiry):
            _refund(
                redemption,
                member,
                description=(
                    "Checkout points returned: code expired unused"
                    if checkout
                    else "Reward code expired unused: points returned"
                ),
                at=now,
            )
        elif status is None:
            logger.info(
                "Redemption %s expired; the shop does not know whether code %r was used, so no points are returned.",
                redemption.pk,
                redemption.code,
            )
        return "expired"


def redemptions_expire_due(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Settle issued codes past their expiry: used ones become "used"; unused ones "expired".

    An unused code's points come back when the programme says so
    (``refund_points_on_code_expiry``) and the shop's adapter can tell that it was unused
    (``discount_status``). Returns how many redemptions were settled; a rerun settles none.
    """
    now = now or timezone.now()
    adapter = _adapter()
    settled, last_id = 0, 0
    while True:
        due = list(
            Redemption.objects.filter(status=Redemption.Status.ISSUED, expires_at__lte=now, pk__gt=last_id)
            .order_by("pk")
            .values_list("pk", "member_id")[:batch_size]
        )
        for redemption_id, member_id in due:
            try:
                if _expire_one(redemption_id=redemption_id, member_id=member_id, adapter=adapter, now=now):
                    settled += 1
            except Exception:  # one shop error must not stop the run; the next run tries again
                logger.exception("Could not settle expired redemption %s.", redemption_id)
        if len(due) < batch_size:
            return settled
        last_id = due[-1][0]


def redemption_cancel(*, redemption: Redemption, by=None, at: datetime | None = None) -> Redemption:
    """Staff cancel a redemption: the shop's code stops working and the points come back.

    An expired code whose points were not returned can be cancelled too (its points then
    come back). A used code cannot be cancelled. Cancelling twice changes nothing.
    """
    at = at or timezone.now()
    with transaction.atomic():
        member = Member.objects.select_for_update().select_related("program").get(pk=redemption.member_id)
        redemption = Redemption.objects.select_for_update(of=("self",)).select_related("reward").get(pk=redemption.pk)
        if redemption.status == Redemption.Status.CANCELLED:
            return redemption
        used = RedemptionNotCancellable(
            _("The code %(code)s was used already; the redemption cannot be cancelled.") % {"code": redemption.code},
            code="redemption_used",
        )
        if redemption.status == Redemption.Status.USED:
            raise used
        revoked = code_revoke(redemption=redemption) if redemption.status == Redemption.Status.ISSUED else None
        if revoked is False:
            raise used
        if revoked is None and redemption.status == Redemption.Status.ISSUED and redemption.code:
            adapter = _adapter()
            if adapter is None:
                raise RedemptionNotCancellable(
                    "No shop adapter is configured, so the code cannot be revoked.", code="discount_not_revocable"
                )
            try:
                revoked = adapter.revoke_discount(code=redemption.code)
            except NotImplementedError as exc:
                raise RedemptionNotCancellable(
                    f"{exc} Deactivate code {redemption.code} in the shop and adjust the points by hand.",
                    code="discount_not_revocable",
                ) from exc
            if not revoked:
                raise used  # the expiry task records it as used
        redemption.status = Redemption.Status.CANCELLED
        redemption.save(update_fields=["status"])
        _refund(redemption, member, description="Reward cancelled by staff: points returned", by=by, at=at)
        return redemption


CODE_EXPIRING_KEY = "code-expiring:"


def redemption_expiry_reminders_send(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Email members whose unused reward code expires within the programme's
    ``code_expiry_reminder_days``, once per code (an ``EmailReceipt`` keyed
    ``code-expiring:<redemption id>``). Transactional: sent regardless of marketing consent."""
    now = now or timezone.now()
    reminded = 0
    for program in Program.objects.filter(is_active=True, code_expiry_reminder_days__gt=0):
        horizon = now + timedelta(days=program.code_expiry_reminder_days)
        marked = EmailReceipt.objects.filter(
            member_id=OuterRef("member_id"),
            key=Concat(Value(CODE_EXPIRING_KEY), Cast(OuterRef("pk"), output_field=CharField())),
        )
        due = (
            Redemption.objects.filter(
                program=program, status=Redemption.Status.ISSUED, expires_at__gt=now, expires_at__lte=horizon
            )
            .exclude(code="")
            .filter(~Exists(marked))
            .order_by("pk")
            .values_list("pk", "member_id")
        )
        for redemption_id, member_id in due.iterator(chunk_size=batch_size):
            with transaction.atomic():
                member = Member.objects.select_for_update().get(pk=member_id)
                key = f"{CODE_EXPIRING_KEY}{redemption_id}"
                if EmailReceipt.objects.filter(member=member, key=key).exists():
                    continue  # a concurrent run took it
                redemption = Redemption.objects.select_related("reward").get(pk=redemption_id)
                EmailReceipt.objects.create(
                    program=program, member=member, key=key, template="reward_code_expiring", created_at=now
                )
                member_email_queue(
                    member=member,
                    template="reward_code_expiring",
                    key=f"email:{key}",
                    context={
                        "redemption_id": redemption.pk,
                        "reward": redemption.reward.name,
                        "code": redemption.code,
                        "expires_on": timezone.localdate(redemption.expires_at).isoformat(),
                    },
                )
                reminded += 1
    return reminded
