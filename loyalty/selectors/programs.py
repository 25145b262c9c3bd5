"""The public "How it works" page of a programme, in words."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..formats import money_text
from ..models import EarningRule, Member, Reward, Tier
from .rewards import reward_options


@dataclass(frozen=True)
class ProgramOverview:
    """The public "How it works" page of a programme."""

    program: object
    earn_rate: str  # "1 point for every 1.00 EUR"
    point_value: str  # "100 points are worth 1.00 EUR"
    bonuses: list[str]
    tiers: list[Tier]
    rewards: list[Reward]
    checkout_points: list[str] = field(default_factory=list)  # "Pay with points in your cart: ..."


def _money(amount: Decimal, currency: str) -> str:
    return _("%(amount)s %(currency)s") % {
        "amount": number_format(amount, 2, force_grouping=True),
        "currency": currency,
    }


#: How the "How it works" page lists bonus rules: the customer's journey, not the alphabet.
_RULE_ORDER = (
    EarningRule.Kind.MULTIPLIER,
    EarningRule.Kind.SIGNUP,
    EarningRule.Kind.FIRST_PURCHASE,
    EarningRule.Kind.PROFILE_COMPLETION,
    EarningRule.Kind.BIRTHDAY,
    EarningRule.Kind.REFERRER,
    EarningRule.Kind.REFEREE,
    EarningRule.Kind.CUSTOM_ACTION,
)


def _rule_in_words(rule: EarningRule, currency: str) -> str:
    Kind = EarningRule.Kind
    points = number_format(rule.points, force_grouping=True)
    minimum = _money(rule.min_order_amount, currency) if rule.min_order_amount else ""
    if rule.kind == Kind.SIGNUP:
        text = _("%(points)s points when you join.") % {"points": points}
    elif rule.kind == Kind.FIRST_PURCHASE:
        text = (
            _("%(points)s bonus points on your first order of %(minimum)s or more.")
            % {"points": points, "minimum": minimum}
            if minimum
            else _("%(points)s bonus points on your first order.") % {"points": points}
        )
    elif rule.kind == Kind.BIRTHDAY:
        text = _("%(points)s points on your birthday, every year.") % {"points": points}
    elif rule.kind == Kind.PROFILE_COMPLETION:
        text = _("%(points)s points for completing your profile.") % {"points": points}
    elif rule.kind == Kind.REFERRER:
        text = _("%(points)s points for every friend you invite who places an order.") % {"points": points}
    elif rule.kind == Kind.REFEREE:
        text = _("%(points)s points for a friend you invite, on their first order.") % {"points": points}
    elif rule.kind == Kind.MULTIPLIER:
        factor = number_format(rule.multiplier.normalize(), force_grouping=True)
        text = (
            _("%(factor)s× points on orders of %(minimum)s or more") % {"factor": factor, "minimum": minimum}
            if minimum
            else _("%(factor)s× points on every order") % {"factor": factor}
        )
        if rule.active_until:
            text = _("%(offer)s, until %(date)s.") % {
                "offer": text,
                "date": date_format(timezone.localtime(rule.active_until), "DATE_FORMAT"),
            }
        else:
            text += "."
    else:
        text = _("%(points)s points: %(what)s.") % {"points": points, "what": rule.name}
    return text


def program_overview(*, slug: str, at: datetime | None = None) -> ProgramOverview | None:
    """Everything the public "How it works" page shows, in words: three queries."""
    from ..models import Program

    at = at or timezone.now()
    program = Program.objects.filter(slug=slug, is_active=True).first()
    if program is None:
        return None
    rules = (
        EarningRule.objects.filter(program=program, is_active=True)
        .filter(Q(active_from__isnull=True) | Q(active_from__lte=at))
        .filter(Q(active_until__isnull=True) | Q(active_until__gt=at))
        .order_by("id")
    )
    order = {kind: position for position, kind in enumerate(_RULE_ORDER)}
    bonuses = [
        _rule_in_words(rule, program.currency)
        for rule in sorted(rules, key=lambda rule: (order.get(rule.kind, len(order)), rule.pk))
        if rule.kind == EarningRule.Kind.MULTIPLIER or rule.points > 0
    ]
    tiers = list(Tier.objects.filter(program=program).order_by("rank"))
    rewards = [option.reward for option in reward_options(Member(program=program, balance=0), at=at)]
    unit = Decimal(1) / program.points_per_unit if program.points_per_unit else None
    rate = program.points_per_unit.normalize()
    earn_rate = (
        ngettext(
            "%(points)s point for every %(amount)s you spend.",
            "%(points)s points for every %(amount)s you spend.",
            1 if rate == 1 else 2,
        )
        % {"points": number_format(rate, force_grouping=True), "amount": _money(Decimal(1), program.currency)}
        if unit
        else ""
    )
    hundred = program.money_value(100)
    point_value = _("100 points are worth %(money)s.") % {"money": _money(hundred, program.currency)} if hundred else ""
    checkout = (
        Reward.objects.filter(program=program, kind=Reward.Kind.POINTS_DISCOUNT, is_active=True)
        .filter(Q(active_from__isnull=True) | Q(active_from__lte=at))
        .filter(Q(active_until__isnull=True) | Q(active_until__gt=at))
        .select_related("min_tier")
        .order_by("min_tier__rank", "pk")
    )
    sentences = [_checkout_points_in_words(reward, program) for reward in checkout]
    return ProgramOverview(program, earn_rate, point_value, bonuses, tiers, rewards, sentences)


def _checkout_points_in_words(reward: Reward, program) -> str:
    """ "Pay with points in your cart: 100 points take €1.00 off, from 100 points, in steps of 100; at most
    half of an order." for the how-it-works page."""
    from ..services.checkout_points import points_amount

    value = reward.point_value or program.point_value
    step = reward.points_step
    worth = money_text(points_amount(step, value), program.currency)
    parts = [
        _("Pay with points in your cart: %(points)s points take %(amount)s off an order.")
        % {"points": number_format(step, force_grouping=True), "amount": worth}
    ]
    if reward.points_cost > step:
        parts.append(
            _("Use at least %(points)s points, in steps of %(step)s.")
            % {"points": number_format(reward.points_cost, force_grouping=True), "step": step}
        )
    if reward.max_order_share and reward.max_order_share < 100:
        share = number_format(reward.max_order_share.normalize(), force_grouping=True)
        parts.append(_("Points pay up to %(share)s%% of an order.") % {"share": share})
    if reward.max_amount:
        parts.append(
            _("Points pay at most %(amount)s of one order.")
            % {"amount": money_text(reward.max_amount, program.currency)}
        )
    if reward.min_order_value:
        parts.append(
            _("For orders of %(minimum)s or more.") % {"minimum": money_text(reward.min_order_value, program.currency)}
        )
    if reward.min_tier_id:
        parts.append(_("For %(tier)s members and above.") % {"tier": reward.min_tier.name})
    return " ".join(parts)
