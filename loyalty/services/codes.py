"""Loyalty's own reward codes and the checkout API a shop calls with them.

For shops that have no discount model (``LOYALTY["REWARD_CODES"] = "loyalty"``): a redeemed
reward becomes a :class:`~loyalty.models.RewardCode` that loyalty stores, and the shop's
checkout asks loyalty about it, inside the shop's own transaction:

- :func:`code_quote`: is this code valid for this customer, order total and currency, and
  what does it take off? Writes nothing.
- :func:`code_consume`: the order is placed with the code. Idempotent per order reference
  (the same order again gets the same answer); a code is used by one order only, also when
  two checkouts race for it (the row is locked).
- :func:`code_release`: the order was cancelled before fulfilment; its codes work again.

Every refusal is a :class:`~loyalty.exceptions.CodeRefused` with a stable ``code``. The
engine is general (amount or percent off, free shipping, a free product, a minimum order,
a currency, personal codes) and not tied to rewards: :func:`code_issue` makes a code for
anything, :func:`code_issue_for_redemption` the code of a redeemed reward.

Codes the shop's adapter makes (``REWARD_CODES = "adapter"``) are marked used when a paid
order event names them (:func:`redemptions_mark_used`), whichever kind they are.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from ..adapters.base import DiscountStatus
from ..exceptions import CodeRefused
from ..models import Program, Redemption, Reward, RewardCode

# Letters and digits that cannot be mistaken for one another when typed (no 0/O, 1/I/L).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CENT = Decimal("0.01")
Kind = Reward.Kind


@dataclass(frozen=True)
class CodeQuote:
    """What a code does to an order. ``discount`` comes off the order total the shop passed
    (never more than it); ``free_shipping``: the shop drops its shipping charge;
    ``product_reference``: for a free product, the product whose price ``discount`` is (0
    when the shop passed no ``lines``)."""

    code: str
    kind: str
    discount: Decimal
    currency: str
    free_shipping: bool
    product_reference: str
    description: str
    order_reference: str = ""


def normalise_code(code: str) -> str:
    """What a customer typed, as codes are stored: no surrounding spaces, capitals."""
    return (code or "").strip().upper()


def _new_code(prefix: str) -> str:
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))
    return f"{prefix}-{body}" if prefix else body


def code_issue(
    *,
    program: Program,
    kind: str,
    value: Decimal = Decimal("0"),
    min_order_value: Decimal | None = None,
    product_reference: str = "",
    member=None,
    redemption: Redemption | None = None,
    valid_from: datetime | None = None,
    expires_at: datetime | None = None,
    description: str = "",
    prefix: str = "LOY",
) -> RewardCode:
    """Make a new code in ``program``'s currency: ``kind`` is a ``Reward.Kind`` value.

    ``member`` set: only that member may use it. The code is ``<prefix>-`` plus 10 random
    characters; on the (near impossible) clash with an existing one it draws again.
    """
    reward_code = RewardCode(
        program=program,
        kind=kind,
        value=value,
        currency=program.currency,
        min_order_value=min_order_value,
        product_reference=product_reference.strip()[:100],
        description=description[:255],
        member=member,
        redemption=redemption,
        valid_from=valid_from or timezone.now(),
        expires_at=expires_at,
        created_at=timezone.now(),
    )
    if kind not in Kind.values:
        raise ValueError(f"kind must be one of {', '.join(Kind.values)}, not {kind!r}")
    for _attempt in range(5):
        reward_code.code = _new_code(prefix)
        reward_code.full_clean(exclude=["program", "member", "redemption"], validate_unique=False)
        try:
            with transaction.atomic():
                reward_code.save(force_insert=True)
            return reward_code
        except IntegrityError:
            reward_code.pk = None
    raise RuntimeError("could not draw an unused reward code")


def code_issue_for_redemption(*, redemption: Redemption) -> str:
    """The code of a redeemed reward, issued by loyalty itself (``REWARD_CODES = "loyalty"``)."""
    reward = redemption.reward
    return code_issue(
        program=redemption.member.program,
        kind=redemption.discount_kind,  # a points discount is a fixed amount of its own size
        value=redemption.discount_value,
        min_order_value=redemption.discount_min_order_value,
        product_reference=reward.product_reference,
        member=redemption.member if reward.personal_code else None,
        redemption=redemption,
        valid_from=redemption.created_at,
        expires_at=redemption.expires_at,
        description=reward.name,
    ).code


# --- the checkout API -----------------------------------------------------------------------


def _refuse(message: str, code: str, **extra) -> CodeRefused:
    return CodeRefused(message, code=code, extra=extra)


def _money(amount: Decimal, currency: str) -> str:
    from django.utils.formats import number_format

    return f"{number_format(amount, 2, force_grouping=True)} {currency}"


def _evaluate(
    reward_code: RewardCode,
    *,
    typed: str,
    order_total: Decimal,
    currency: str,
    user,
    lines: Mapping[str, Decimal] | None,
    at: datetime,
    order_reference: str = "",
) -> CodeQuote:
    """The quote, or the first reason ``reward_code`` cannot be used on this order."""
    if not isinstance(order_total, Decimal) or not order_total.is_finite() or order_total < 0:
        raise ValueError(f"order_total must be a Decimal >= 0, not {order_total!r}")
    if reward_code.status == RewardCode.Status.REVOKED:
        raise _refuse(_("The code %(code)s was cancelled.") % {"code": typed}, "code_revoked")
    if reward_code.status == RewardCode.Status.USED and reward_code.order_reference != order_reference:
        raise _refuse(_("The code %(code)s has been used already.") % {"code": typed}, "code_used")
    if reward_code.expires_at is not None and at >= reward_code.expires_at:
        raise _refuse(
            _("The code %(code)s expired on %(date)s.")
            % {"code": typed, "date": date_format(timezone.localtime(reward_code.expires_at), "DATE_FORMAT")},
            "code_expired",
            expires_at=reward_code.expires_at.isoformat(),
        )
    if at < reward_code.valid_from:
        raise _refuse(_("The code %(code)s is not valid yet.") % {"code": typed}, "code_not_yet_valid")
    if reward_code.member_id is not None:
        owner = reward_code.member.user_id
        if user is None or not getattr(user, "is_authenticated", True) or getattr(user, "pk", user) != owner:
            raise _refuse(
                _("The code %(code)s belongs to another customer's account: sign in as its owner to use it.")
                % {"code": typed},
                "wrong_customer",
            )
    money_involved = reward_code.kind == Kind.FIXED or reward_code.min_order_value is not None
    if money_involved and currency.upper() != reward_code.currency:
        raise _refuse(
            _("The code %(code)s is for orders in %(currency)s.") % {"code": typed, "currency": reward_code.currency},
            "wrong_currency",
            currency=reward_code.currency,
        )
    if reward_code.min_order_value is not None and order_total < reward_code.min_order_value:
        raise _refuse(
            _("The code %(code)s needs an order of at least %(minimum)s.")
            % {"code": typed, "minimum": _money(reward_code.min_order_value, reward_code.currency)},
            "below_minimum",
            min_order_value=str(reward_code.min_order_value),
        )
    discount = Decimal("0.00")
    if reward_code.kind == Kind.FIXED:
        discount = reward_code.value
    elif reward_code.kind == Kind.PERCENT:
        discount = (order_total * reward_code.value / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    elif reward_code.kind == Kind.FREE_PRODUCT and lines is not None:
        if reward_code.product_reference not in lines:
            raise _refuse(
                _("The code %(code)s gives a product that is not in this order.") % {"code": typed},
                "product_not_in_order",
                product_reference=reward_code.product_reference,
            )
        discount = Decimal(lines[reward_code.product_reference])
    return CodeQuote(
        code=reward_code.code,
        kind=reward_code.kind,
        discount=min(discount, order_total).quantize(CENT),
        currency=reward_code.currency,
        free_shipping=reward_code.kind == Kind.FREE_SHIPPING,
        product_reference=reward_code.product_reference,
        description=reward_code.description,
        order_reference=order_reference if reward_code.status == RewardCode.Status.USED else "",
    )


def _unknown(typed: str) -> CodeRefused:
    return _refuse(_("The code %(code)s is not known.") % {"code": typed}, "code_unknown")


def code_quote(
    *,
    code: str,
    order_total: Decimal,
    currency: str,
    user=None,
    lines: Mapping[str, Decimal] | None = None,
    at: datetime | None = None,
) -> CodeQuote:
    """Whether ``code`` can be used now on an order of ``order_total`` in ``currency`` by
    ``user`` (the signed-in customer, or ``None`` for a guest), and what it takes off.

    ``order_total``: what the minimum order value is compared with and a percentage is taken
    of (the goods, before shipping). ``lines``: optional, the order's products as
    ``{product reference: unit price}``, so that a free product's price comes off. Raises
    :class:`CodeRefused`; writes nothing (one query).
    """
    typed = normalise_code(code)
    reward_code = RewardCode.objects.select_related("member").filter(code=typed).first()
    if reward_code is None:
        raise _unknown(typed)
    return _evaluate(
        reward_code,
        typed=typed,
        order_total=order_total,
        currency=currency,
        user=user,
        lines=lines,
        at=at or timezone.now(),
    )


def code_consume(
    *,
    code: str,
    order_reference: str,
    order_total: Decimal,
    currency: str,
    user=None,
    lines: Mapping[str, Decimal] | None = None,
    at: datetime | None = None,
) -> CodeQuote:
    """The order ``order_reference`` is placed with ``code``: check it as :func:`code_quote`
    does and mark it used by that order, its redemption too ("Used on order #…").

    Call it inside the transaction that saves the order, so both commit or roll back
    together. Idempotent per order: consuming the same code for the same order again
    returns the quote it got the first time. Two orders racing for one code: the row lock
    lets one through; the other gets ``code_used``.
    """
    order_reference = str(order_reference)
    if not order_reference or len(order_reference) > 100:
        raise ValueError("order_reference is required (at most 100 characters)")
    typed = normalise_code(code)
    at = at or timezone.now()
    with transaction.atomic():
        found = RewardCode.objects.filter(code=typed).values_list("pk", "redemption_id").first()
        if found is None:
            raise _unknown(typed)
        code_id, redemption_id = found
        # Lock order: the redemption, then its code (as cancellation and expiry do).
        if redemption_id is not None:
            list(Redemption.objects.select_for_update().filter(pk=redemption_id).values_list("pk"))
        reward_code = RewardCode.objects.select_for_update(of=("self",)).select_related("member").get(pk=code_id)
        if reward_code.status == RewardCode.Status.USED and reward_code.order_reference == order_reference:
            return CodeQuote(
                code=reward_code.code,
                kind=reward_code.kind,
                discount=reward_code.discount,
                currency=reward_code.currency,
                free_shipping=reward_code.kind == Kind.FREE_SHIPPING,
                product_reference=reward_code.product_reference,
                description=reward_code.description,
                order_reference=order_reference,
            )
        quote = _evaluate(
            reward_code,
            typed=typed,
            order_total=order_total,
            currency=currency,
            user=user,
            lines=lines,
            at=at,
        )
        reward_code.status = RewardCode.Status.USED
        reward_code.order_reference = order_reference
        reward_code.used_at = at
        reward_code.discount = quote.discount
        reward_code.save(update_fields=["status", "order_reference", "used_at", "discount"])
        if redemption_id is not None:
            Redemption.objects.filter(pk=redemption_id, status=Redemption.Status.ISSUED).update(
                status=Redemption.Status.USED, used_at=at, order_reference=order_reference
            )
        return CodeQuote(**{**quote.__dict__, "order_reference": order_reference})


def code_release(*, order_reference: str, code: str | None = None) -> int:
    """The order ``order_reference`` was cancelled before fulfilment: the codes it used (or
    only ``code``) work again, and their redemptions are issued again. Returns how many
    codes were released; releasing again releases none. A code whose expiry passed
    meanwhile is settled by the daily expiry task (its points come back)."""
    order_reference = str(order_reference)
    with transaction.atomic():
        used = RewardCode.objects.filter(order_reference=order_reference, status=RewardCode.Status.USED)
        if code is not None:
            used = used.filter(code=normalise_code(code))
        rows = list(used.values_list("pk", "redemption_id"))
        redemption_ids = [rid for _pk, rid in rows if rid is not None]
        if redemption_ids:
            list(Redemption.objects.select_for_update().filter(pk__in=redemption_ids).order_by("pk").values_list("pk"))
        released = RewardCode.objects.filter(
            pk__in=[pk for pk, _rid in rows], order_reference=order_reference, status=RewardCode.Status.USED
        ).update(status=RewardCode.Status.ACTIVE, order_reference="", used_at=None, discount=None)
        if redemption_ids:
            Redemption.objects.filter(
                pk__in=redemption_ids, status=Redemption.Status.USED, order_reference=order_reference
            ).update(status=Redemption.Status.ISSUED, used_at=None, order_reference="")
        return released


# --- for the rewards service: expiry and cancellation of loyalty's own codes ------------------


def code_status(*, redemption: Redemption) -> str | None:
    """``DiscountStatus`` of the redemption's own code; ``None`` when it has none (the adapter's)."""
    status = RewardCode.objects.filter(redemption_id=redemption.pk).values_list("status", flat=True).first()
    if status is None:
        return None
    return DiscountStatus.USED if status == RewardCode.Status.USED else DiscountStatus.UNUSED


def code_revoke(*, redemption: Redemption) -> bool | None:
    """Stop the redemption's own code from working (staff cancelled the redemption).

    ``True``: revoked (or was already); ``False``: it was used; ``None``: the redemption has
    no code of loyalty's (its code is the adapter's). The caller holds the redemption's lock.
    """
    reward_code = RewardCode.objects.select_for_update().filter(redemption_id=redemption.pk).first()
    if reward_code is None:
        return None
    if reward_code.status == RewardCode.Status.USED:
        return False
    if reward_code.status != RewardCode.Status.REVOKED:
        reward_code.status = RewardCode.Status.REVOKED
        reward_code.save(update_fields=["status"])
    return True


# --- codes an order used, as its paid event says ---------------------------------------------


def redemptions_mark_used(*, program: Program, codes: Iterable[str], order_reference: str, at: datetime) -> int:
    """Mark the issued redemptions whose code is in ``codes`` used on ``order_reference``
    (one ``UPDATE``). Called with a paid order event's ``discount_codes``; codes that are
    not loyalty's, or were settled already, are left alone."""
    wanted = {c.strip() for c in codes if c and c.strip()}
    wanted |= {c.upper() for c in wanted}
    if not wanted:
        return 0
    return Redemption.objects.filter(
        Q(program=program) & Q(status=Redemption.Status.ISSUED) & Q(code__in=sorted(wanted))
    ).update(status=Redemption.Status.USED, used_at=at, order_reference=order_reference[:100])


def codes_used_by_paid_order(*, event, program: Program) -> None:
    """What a paid event adds for its codes: nothing (and no query) when the order used none."""
    if event.discount_codes:
        redemptions_mark_used(
            program=program, codes=event.discount_codes, order_reference=event.order_reference, at=event.occurred_at
        )
