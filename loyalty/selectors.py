"""Reads: what pages, admin, API and commands show. Query counts do not grow with history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from django.core.paginator import Page, Paginator
from django.db.models import Count, DecimalField, F, IntegerField, Min, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest, TruncDate
from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .conf import loyalty_settings
from .formats import money_text
from .models import (
    CustomerHealth,
    EarningRule,
    HealthModelFit,
    HealthRun,
    Member,
    Message,
    PointsEntry,
    Purchase,
    Redemption,
    Reward,
    SegmentChange,
    Tier,
)


@dataclass(frozen=True)
class RewardOption:
    reward: Reward
    missing_points: int  # 0: affordable now
    unavailable_because: str  # empty when the member may redeem it

    @property
    def redeemable(self) -> bool:
        return not self.missing_points and not self.unavailable_because


@dataclass(frozen=True)
class HistoryRow:
    """One line of the customer's points history, in words ("Order #1042", "Birthday bonus")."""

    created_at: datetime
    points: int
    title: str
    note: str = ""
    expires_at: datetime | None = None

    @property
    def amount(self) -> int:
        return abs(self.points)


@dataclass(frozen=True)
class ExpiringPoints:
    """Points that lapse soon: ``points`` of them on ``at`` (the first date something expires)."""

    points: int
    at: datetime
    whole_balance: bool = False  # inactivity policy: the whole balance goes unless the member orders


@dataclass(frozen=True)
class MemberSummary:
    member: Member
    history: list[PointsEntry] | list[HistoryRow]
    progress: TierProgress | None = None
    rewards: list[RewardOption] = field(default_factory=list)
    codes: list[Redemption] = field(default_factory=list)
    history_page: Page | None = None
    expiring: ExpiringPoints | None = None
    # The shop takes points as money at checkout: only then is the balance "worth" an amount.
    points_as_money: bool = False
    points_worth: Decimal | None = None  # what the balance pays in the cart now (whole steps)
    points_needed: int = 0  # points still missing before the cart takes any (points_as_money)

    @property
    def program(self):
        return self.member.program

    @property
    def best_affordable(self) -> RewardOption | None:
        """The dearest reward the member can have now: what the balance buys."""
        options = self.affordable_rewards
        return options[-1] if options else None

    @property
    def next_reward(self) -> RewardOption | None:
        """The cheapest reward the member may have once they have the points."""
        return next((o for o in self.rewards if o.missing_points and not o.unavailable_because), None)

    @property
    def affordable_rewards(self) -> list[RewardOption]:
        return [option for option in self.rewards if option.redeemable]

    @property
    def other_rewards(self) -> list[RewardOption]:
        return [option for option in self.rewards if not option.redeemable]


def memberships_for_user(user) -> QuerySet[Member]:
    if not getattr(user, "is_authenticated", False):
        return Member.objects.none()
    return (
        Member.objects.filter(user=user, program__is_active=True)
        .select_related("program", "tier")
        .order_by("program_id")
    )


def points_history(member: Member, *, limit: int | None = None) -> list[PointsEntry]:
    """The member's newest ledger rows (one query, whatever the ledger's length)."""
    limit = limit or loyalty_settings.ACCOUNT_HISTORY_SIZE
    return list(
        PointsEntry.objects.filter(member=member)
        .only("kind", "points", "reference", "description", "created_at", "expires_at", "purchase_id")
        .order_by("-created_at", "-id")[:limit]
    )


def reward_options(member: Member, *, at: datetime | None = None) -> list[RewardOption]:
    """The programme's rewards on offer now, each with what stands between the member and it (one query)."""
    at = at or timezone.now()
    rewards = (
        Reward.objects.filter(program_id=member.program_id, is_active=True)
        .filter(Q(active_from__isnull=True) | Q(active_from__lte=at))
        .filter(Q(active_until__isnull=True) | Q(active_until__gt=at))
        .exclude(stock=0)
        .exclude(kind=Reward.Kind.POINTS_DISCOUNT)  # chosen in the cart, not redeemed for a code
        .select_related("min_tier")
        .order_by("points_cost", "name")
    )
    member_rank = member.tier.rank if member.tier_id and member.tier else 0
    options = []
    for reward in rewards:
        reason = ""
        if reward.min_tier_id and member_rank < reward.min_tier.rank:
            reason = _("For %(tier)s members and above") % {"tier": reward.min_tier.name}
        options.append(RewardOption(reward, max(reward.points_cost - max(member.balance, 0), 0), reason))
    return options


def member_codes(member: Member, *, limit: int = 10) -> list[Redemption]:
    """The member's latest reward codes, newest first (one query)."""
    # Points used at checkout have codes too, but the customer never sees or types them.
    codes = (
        Redemption.objects.filter(member=member)
        .exclude(reward__kind=Reward.Kind.POINTS_DISCOUNT)
        .select_related("reward")
        .order_by("-created_at", "-id")
    )
    return list(codes[:limit])


def account_summaries(user, *, history_page: int | str | None = None) -> list[MemberSummary]:
    """What the account panel shows; a constant number of queries per programme, whatever the
    length of the ledger. ``history_page``: the page of points history (``?history_page=N``),
    the first when missing or invalid, the last when past the end."""
    summaries = []
    for member in memberships_for_user(user):
        page = points_history_page(member, page=history_page)
        worth, needed = checkout_points_worth(member)
        summaries.append(
            MemberSummary(
                member=member,
                history=list(page.object_list),
                history_page=page,
                progress=tier_progress(member),
                rewards=reward_options(member),
                codes=member_codes(member),
                expiring=expiring_points(member),
                points_as_money=worth is not None,
                points_worth=worth,
                points_needed=needed,
            )
        )
    return summaries


def checkout_points_worth(member: Member) -> tuple[Decimal | None, int]:
    """What the balance pays in the cart now, ``(money, 0)``, counting whole steps only;
    ``(0.00, n)`` when ``n`` more points are needed first; ``(None, 0)`` when the member cannot
    pay with points at all (no active points discount, or one for higher tiers). Two queries."""
    from .exceptions import LoyaltyError
    from .services.checkout_points import points_amount, points_discount_reward

    try:
        reward = points_discount_reward(member=member)
    except LoyaltyError:
        return None, 0
    balance = max(member.balance, 0)
    usable = balance - balance % reward.points_step
    if usable < reward.points_cost:
        return Decimal("0.00"), reward.points_cost - balance
    return points_amount(usable, reward.point_value or member.program.point_value), 0


# --- customer pages: history in words, expiring points, order points, how it works --------------

# A cancellation's reversal has a description starting with this (services/events.py writes it).
CANCELLED_NOTE = "Order cancelled"

_HISTORY_FIELDS = (
    "kind",
    "points",
    "reference",
    "description",
    "created_at",
    "expires_at",
    "purchase_id",
    "idempotency_key",
)


def _quoted_after(prefix: str, text: str) -> str | None:
    """``We miss you`` from ``Campaign “We miss you”`` (services store English descriptions)."""
    if text.startswith(prefix) and text.endswith("”"):
        return text[len(prefix) : -1]
    return None


# Points used at checkout (services/checkout_points.py writes these keys and descriptions).
CHECKOUT_KEY_PREFIX = "redeem:checkout:"
CHECKOUT_GIVEN_BACK = "Checkout points returned"


def paid_with_points(points: int, amount: Decimal, currency: str) -> str:
    """"Paid with 500 points (−5.00 €)": the history line and the receipt's."""
    return ngettext(
        "Paid with %(points)s point (−%(amount)s)", "Paid with %(points)s points (−%(amount)s)", points
    ) % {"points": number_format(points, force_grouping=True), "amount": money_text(amount, currency)}


def _amount_in(reference: str) -> tuple[Decimal, str] | None:
    """``(Decimal("5.00"), "EUR")`` from the reference ``"5.00 EUR"`` of a checkout debit."""
    value, _space, currency = reference.partition(" ")
    try:
        return Decimal(value), currency
    except ArithmeticError:
        return None


def _checkout_return_note(text: str) -> str:
    if "expired" in text:
        return _("The order was not placed in time.")
    if "changed" in text:
        return _("You changed the points used on your order.")
    if "removed" in text:
        return _("You took the points off your order.")
    if "cancelled" in text:
        return _("The order was cancelled.")
    if "refunded" in text:
        return _("The order was refunded.")
    return ""


def history_row(entry: PointsEntry) -> HistoryRow:
    """A ledger row in the customer's words. Services store keys, references and (English)
    descriptions; this maps them to translatable text, so the template only prints."""
    kind, ref, text, key = entry.kind, entry.reference, entry.description, entry.idempotency_key
    Kind = PointsEntry.Kind
    title, note = entry.get_kind_display(), ""
    if kind == Kind.EARN:
        title = _("Order #%(order)s") % {"order": ref} if ref else _("Purchase")
    elif kind == Kind.BONUS:
        if (name := _quoted_after("Campaign “", text)) is not None:
            title = _("Campaign “%(name)s”") % {"name": name}
        elif key.startswith(TIER_ENTRY_KEY_PREFIX):
            tier = text.removeprefix("Entry bonus: ")
            title = _("Welcome to %(tier)s") % {"tier": tier}
        elif ":birthday:" in key:
            title = _("Birthday bonus")
        elif key.startswith("referral:"):
            title = _("Referral bonus")
            note = text
        else:
            title = text or _("Bonus")
            if entry.purchase_id and ref:
                note = _("Order #%(order)s") % {"order": ref}
    elif kind == Kind.REDEEM:
        if key.startswith(CHECKOUT_KEY_PREFIX) and (paid := _amount_in(ref)) is not None:
            title = paid_with_points(abs(entry.points), *paid)
        else:
            title = _("Redeemed for “%(reward)s”") % {"reward": ref} if ref else _("Redeemed")
    elif kind == Kind.REVERSE:
        if text.startswith(CANCELLED_NOTE):
            title = _("Order #%(order)s cancelled") % {"order": ref} if ref else _("Order cancelled")
        else:
            title = _("Refund of order #%(order)s") % {"order": ref} if ref else _("Refund")
        if "forgiven" in text:
            note = _("Points you had already spent were forgiven.")
    elif kind == Kind.EXPIRE:
        title = _("Expired")
    elif kind == Kind.ADJUST:
        if key.startswith("redemption:") and text.startswith(CHECKOUT_GIVEN_BACK):
            title = _("Points returned from checkout")
            note = _checkout_return_note(text)
        elif key.startswith("redemption:"):
            title = _("Points returned for “%(reward)s”") % {"reward": ref} if ref else _("Points returned")
            note = _("The reward code was not used.") if "expired" in text else ""
        else:
            title = _("Adjustment by our team")
            note = text
    return HistoryRow(entry.created_at, entry.points, title, note, entry.expires_at if entry.points > 0 else None)


def points_history_page(member: Member, *, page: int | str | None = None, per_page: int | None = None) -> Page:
    """One page of the member's points history in words, newest first: two queries (a count
    and the page's rows), whatever the ledger's length."""
    per_page = per_page or loyalty_settings.ACCOUNT_HISTORY_SIZE
    rows = PointsEntry.objects.filter(member=member).only(*_HISTORY_FIELDS).order_by("-created_at", "-id")
    result = Paginator(rows, per_page).get_page(page)
    result.object_list = [history_row(entry) for entry in result.object_list]
    return result


def expiring_points(
    member: Member, *, at: datetime | None = None, within_days: int | None = None
) -> ExpiringPoints | None:
    """The next points to lapse, if within ``within_days`` (the programme's reminder window, at
    least 30 days): per-lot expiry is one query; the inactivity policy needs none."""
    at = at or timezone.now()
    program = member.program
    days = within_days if within_days is not None else max(program.expiry_reminder_days, 30)
    horizon = at + timedelta(days=days)
    if member.balance <= 0:
        return None
    if program.expiry_policy == program.ExpiryPolicy.INACTIVITY:
        if not program.inactivity_days or member.last_purchase_at is None:
            return None
        lapse = member.last_purchase_at + timedelta(days=program.inactivity_days)
        return ExpiringPoints(member.balance, lapse, whole_balance=True) if at < lapse <= horizon else None
    if program.expiry_policy != program.ExpiryPolicy.PER_LOT:
        return None
    first = (
        PointsEntry.objects.filter(member=member, points__gt=0, remaining__gt=0, expires_at__gt=at)
        .filter(expires_at__lte=horizon)
        .annotate(day=TruncDate("expires_at"))
        .values("day")
        .annotate(points=Sum("remaining"), first=Min("expires_at"))
        .order_by("day")
        .first()
    )
    return ExpiringPoints(first["points"], first["first"]) if first else None


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
    from .config_cache import program_config

    program = purchase.program
    multiplier = program_config(program).campaign_multiplier(amount=purchase.amount, at=purchase.occurred_at)
    return program.points_for(purchase.amount, multiplier=multiplier)


def guest_points_reversed(purchase: Purchase, earned: int) -> int:
    """Points refunds take back of ``earned``: pro rata, rounded down (as for members' refunds)."""
    if purchase.amount <= 0 or not purchase.refunded_amount:
        return 0
    share = Decimal(earned) * purchase.refunded_amount / purchase.amount
    return min(int(share.to_integral_value(rounding=ROUND_FLOOR)), earned)


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
    from .models import Program

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
    """"Pay with points in your cart: 100 points take €1.00 off, from 100 points, in steps of 100; at most
    half of an order." for the how-it-works page."""
    from .services.checkout_points import points_amount

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


def _sum_of(field: str, **filters) -> Coalesce:
    rows = (
        PointsEntry.objects.filter(member=OuterRef("pk"), **filters)
        .order_by()
        .values("member")
        .annotate(total=Sum(field))
        .values("total")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), Value(0))


def ledger_mismatches() -> QuerySet[Member]:
    """Members whose cached balance or open lots disagree with their ledger (one query)."""
    return (
        Member.objects.annotate(
            ledger_sum=_sum_of("points"),
            open_points=_sum_of("remaining", points__gt=0),
        )
        .filter(~Q(balance=F("ledger_sum")) | ~Q(open_points=Greatest(F("balance"), Value(0))))
        .select_related("program", "user")
        .order_by("pk")
    )


# --- tiers ---------------------------------------------------------------------------------

#: What a tier is measured by and over how many days: tiers sharing both share one sum.
QualificationKey = tuple[str, int]

#: Ledger kinds that count for points-qualified tiers. Pending points are not in the ledger
#: yet, so only approved points count. Tier entry bonuses (keys ``tier-entry:...``) do not:
#: reaching a tier never pays towards the next one.
TIER_POINTS_KINDS = (PointsEntry.Kind.EARN, PointsEntry.Kind.BONUS, PointsEntry.Kind.REVERSE)
TIER_ENTRY_KEY_PREFIX = "tier-entry:"

_SPEND, _POINTS = Tier.QualifiesBy.SPEND, Tier.QualifiesBy.POINTS
_MONEY = DecimalField(max_digits=14, decimal_places=2)
_CENT = Decimal("0.01")
_DATE_FIELD = {_SPEND: "occurred_at", _POINTS: "created_at"}


def tier_qualification_keys(tiers) -> set[QualificationKey]:
    return {(tier.qualifies_by, tier.window_days) for tier in tiers}


def tier_qualification_alias(key: QualificationKey) -> str:
    return f"tier_{key[0]}_{key[1]}d"


def _qualifying_rows(kind: str, *, at: datetime, days: int) -> QuerySet:
    """Purchases (spend) or ledger rows (points) that count, in the window ``(at - days, at]``."""
    window = {f"{_DATE_FIELD[kind]}__gt": at - timedelta(days=days), f"{_DATE_FIELD[kind]}__lte": at}
    if kind == _SPEND:
        return Purchase.objects.filter(**window).exclude(status=Purchase.Status.CANCELLED)
    return PointsEntry.objects.filter(kind__in=TIER_POINTS_KINDS, **window).exclude(
        idempotency_key__startswith=TIER_ENTRY_KEY_PREFIX
    )


def _qualifying_sum(kind: str, **extra) -> Sum:
    if kind == _SPEND:
        return Sum(F("amount") - F("refunded_amount"), output_field=_MONEY, **extra)
    return Sum("points", **extra)


def _zero(kind: str) -> Decimal | int:
    return Decimal("0.00") if kind == _SPEND else 0


def tier_qualification(member_id: int, *, at: datetime, keys) -> dict[QualificationKey, Decimal | int]:
    """The member's qualifying spend or points for each ``(qualifies_by, window_days)`` of ``keys``,
    in windows ending at ``at``: one aggregate query per kind, every window of a kind in it
    (conditional aggregation), so normally one query."""
    values: dict[QualificationKey, Decimal | int] = {}
    for kind in (_SPEND, _POINTS):
        windows = sorted({days for what, days in keys if what == kind})
        if not windows:
            continue
        widest = windows[-1]
        sums = {
            tier_qualification_alias((kind, days)): _qualifying_sum(
                kind,
                filter=None if days == widest else Q(**{f"{_DATE_FIELD[kind]}__gt": at - timedelta(days=days)}),
            )
            for days in windows
        }
        totals = _qualifying_rows(kind, at=at, days=widest).filter(member_id=member_id).aggregate(**sums)
        for days in windows:
            total = totals[tier_qualification_alias((kind, days))]
            if total is None:
                total = _zero(kind)
            values[(kind, days)] = total.quantize(_CENT) if kind == _SPEND else total
    return values


def members_with_tier_qualification(program, *, at: datetime, keys) -> QuerySet[Member]:
    """The programme's members, each annotated (``tier_qualification_alias(key)``) with their
    qualifying value for every key: one query, set-based (a correlated sum per key)."""
    annotations = {}
    for kind, days in keys:
        rows = (
            _qualifying_rows(kind, at=at, days=days)
            .filter(member=OuterRef("pk"))
            .order_by()
            .values("member")
            .annotate(total=_qualifying_sum(kind))
            .values("total")
        )
        field = _MONEY if kind == _SPEND else IntegerField()
        annotations[tier_qualification_alias((kind, days))] = Coalesce(
            Subquery(rows, output_field=field), Value(_zero(kind)), output_field=field
        )
    return Member.objects.filter(program=program).annotate(**annotations)


@dataclass(frozen=True)
class TierProgress:
    """Where a member stands: "spend 42.00 EUR more to reach Gold"."""

    tier: Tier | None
    next_tier: Tier | None
    value: Decimal | int | None  # what counts for ``next_tier`` so far, in its window
    missing: Decimal | int | None  # money (2 places) for spend tiers, whole points for points tiers
    fraction: float  # 0..1, for a progress bar
    currency: str
    tier_kept_until: datetime | None  # the current tier is kept at least until then

    @property
    def qualifies_by(self) -> str | None:
        return self.next_tier.qualifies_by if self.next_tier else None

    @property
    def window_days(self) -> int | None:
        return self.next_tier.window_days if self.next_tier else None


def tier_progress(member: Member, *, at: datetime | None = None) -> TierProgress | None:
    """Progress to the next tier; ``None`` when the programme has no tiers. At most 2 queries."""
    at = at or timezone.now()
    tiers = list(Tier.objects.filter(program_id=member.program_id).select_related("program").order_by("rank"))
    if not tiers:
        return None
    program = tiers[0].program
    current = next((tier for tier in tiers if tier.pk == member.tier_id), None)
    next_tier = next((tier for tier in tiers if current is None or tier.rank > current.rank), None)
    kept_until = (
        member.tier_since + timedelta(days=program.tier_retention_days)
        if current is not None and member.tier_since is not None
        else None
    )
    if next_tier is None:
        return TierProgress(current, None, None, None, 1.0, program.currency, kept_until)
    key = (next_tier.qualifies_by, next_tier.window_days)
    value = tier_qualification(member.pk, at=at, keys={key})[key]
    gap = max(next_tier.threshold - value, Decimal("0"))
    if next_tier.qualifies_by == _SPEND:
        value, missing = value.quantize(_CENT), gap.quantize(_CENT)
    else:
        missing = int(gap.to_integral_value(rounding=ROUND_CEILING))
    fraction = 1.0 if next_tier.threshold <= 0 else min(max(float(value / next_tier.threshold), 0.0), 1.0)
    return TierProgress(current, next_tier, value, missing, fraction, program.currency, kept_until)


# --- campaigns -------------------------------------------------------------------------------

_PERCENT = Decimal("0.01")


def _rate(part: int, whole: int) -> Decimal | None:
    """``part / whole`` in percent (exact Decimal), ``None`` when ``whole`` is 0."""
    return Decimal(part) * 100 / Decimal(whole) if whole else None


def _rounded(value: Decimal | None) -> Decimal | None:
    return value.quantize(_PERCENT) if value is not None else None


def campaign_report(*, campaign) -> dict:
    """What a campaign achieved against its control group: one aggregate query over its messages.

    Counts are messages (one per member and cycle). ``eligible``: every row, control included;
    ``opened``/``clicked``/``converted``/``revenue`` of sent messages. Rates are percentages
    (``conversion_rate`` = converted / sent); ``uplift`` = treatment rate - control rate in
    percentage points, ``relative_uplift`` = uplift / control rate in percent. ``None`` when a
    rate's denominator is 0. Money is Decimal in the programme's currency.
    """
    status = Message.Status
    sent, control = Q(status=status.SENT), Q(status=status.CONTROL)
    totals = Message.objects.filter(campaign=campaign).aggregate(
        eligible=Count("pk"),
        queued=Count("pk", filter=Q(status=status.QUEUED)),
        sent=Count("pk", filter=sent),
        failed=Count("pk", filter=Q(status=status.FAILED)),
        skipped=Count("pk", filter=Q(status=status.SKIPPED)),
        opened=Count("pk", filter=sent & Q(opened_at__isnull=False)),
        clicked=Count("pk", filter=sent & Q(clicked_at__isnull=False)),
        unsubscribed=Count("pk", filter=Q(unsubscribed_at__isnull=False)),
        converted=Count("pk", filter=sent & Q(converted_at__isnull=False)),
        sent_revenue=Sum("revenue", filter=sent & Q(converted_at__isnull=False)),
        control=Count("pk", filter=control),
        control_converted=Count("pk", filter=control & Q(converted_at__isnull=False)),
        control_revenue=Sum("revenue", filter=control & Q(converted_at__isnull=False)),
    )
    treatment_rate = _rate(totals["converted"], totals["sent"])
    control_rate = _rate(totals["control_converted"], totals["control"])
    uplift = treatment_rate - control_rate if treatment_rate is not None and control_rate is not None else None
    relative = uplift * 100 / control_rate if uplift is not None and control_rate else None
    return {
        **{key: totals[key] for key in ("eligible", "queued", "sent", "failed", "skipped", "opened", "clicked")},
        "unsubscribed": totals["unsubscribed"],
        "converted": totals["converted"],
        "revenue": (totals["sent_revenue"] or Decimal("0")).quantize(_CENT),
        "conversion_rate": _rounded(treatment_rate),
        "control": {
            "members": totals["control"],
            "converted": totals["control_converted"],
            "revenue": (totals["control_revenue"] or Decimal("0")).quantize(_CENT),
            "conversion_rate": _rounded(control_rate),
        },
        "uplift": _rounded(uplift),
        "relative_uplift": _rounded(relative),
    }


# --- customer health --------------------------------------------------------------------------


def latest_health_fit(*, program) -> HealthModelFit | None:
    return HealthModelFit.objects.filter(program=program).order_by("-fitted_at", "-id").first()


def latest_health_run(*, program) -> HealthRun | None:
    return HealthRun.objects.filter(program=program).order_by("-started_at", "-id").first()


def default_health_program():
    """The programme whose health admin pages describe when none is chosen: the oldest active one."""
    from .models import Program

    return Program.objects.filter(is_active=True).order_by("created_at", "pk").first()


def members_moved_into(*, program, segment: str, since: datetime) -> QuerySet[SegmentChange]:
    """Who entered ``segment`` since ``since`` (e.g. "at risk this week"), newest first."""
    return (
        SegmentChange.objects.filter(program=program, to_segment=segment, changed_at__gte=since)
        .select_related("member__user")
        .order_by("-changed_at", "-id")
    )


def at_risk_members(*, program) -> QuerySet[CustomerHealth]:
    """Members flagged at risk, most likely to lapse first."""
    return (
        CustomerHealth.objects.filter(program=program, at_risk=True)
        .select_related("member__user")
        .order_by(F("p_lapse").desc(nulls_last=True), "-recency_days")
    )
