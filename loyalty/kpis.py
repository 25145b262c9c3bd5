"""Loyalty KPIs for the staff dashboard (and, later, the REST API): reads only, set-based.

Every selector takes keyword-only ``program``, ``start`` and ``end`` (aware datetimes; the
period is ``[start, end)``) and runs a fixed number of aggregate queries, whatever the
number of orders, members or ledger rows. Money is ``Decimal`` (2 places) in the
programme's currency, counts are ``int``, ratios are ``float`` fractions (0.25 = 25 %) and
``None`` when their denominator is 0. Definitions: ``docs/dashboard.md``.

What counts as an order: a :class:`~loyalty.models.Purchase` of the programme, paid or
partially refunded, paid in the period. Its revenue is ``amount - refunded_amount``; fully
refunded and cancelled orders are left out. A *customer* is a member, or for a guest order
the lower-cased email (a guest order without an email is a customer of its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import (
    Case,
    CharField,
    Count,
    DateField,
    DecimalField,
    F,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Concat, Lower, TruncMonth
from django.utils import timezone

from .models import (
    Campaign,
    CustomerHealth,
    Member,
    PointsEntry,
    Program,
    Purchase,
    Redemption,
    Reward,
    Segment,
    SegmentChange,
    SurveyResponse,
    Tier,
)
from .nps import DETRACTOR, PASSIVE, PROMOTER, nps_band_q, nps_score
from .selectors import campaign_report

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
DAYS_PER_YEAR = Decimal(365)

#: Orders that count: paid, or paid and partly refunded (counted at their net amount).
COUNTED_STATUSES = Purchase.KEPT_STATUSES
#: A segment staff watch; "moved into at risk" counts members who entered it recently.
AT_RISK = Segment.AT_RISK.value
RECENT_MOVES = timedelta(days=7)
#: The window customer lifetime value is estimated from on the dashboard, whatever the period.
CLV_WINDOW = timedelta(days=365)
#: Expected years retained never exceed this when estimated from churn (churn 0 would be forever).
MAX_EXPECTED_YEARS = Decimal(10)

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


# --- orders -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderKpis:
    orders: int
    guest_orders: int
    revenue: Decimal
    member_revenue: Decimal
    customers: int
    repeat_customers: int  # customers with more than one order in the period

    @property
    def member_orders(self) -> int:
        return self.orders - self.guest_orders

    @property
    def guest_revenue(self) -> Decimal:
        return self.revenue - self.member_revenue

    @property
    def guest_checkout_rate(self) -> float | None:
        """Guest orders / all orders."""
        return _ratio(self.guest_orders, self.orders)

    @property
    def average_order_value(self) -> Decimal | None:
        """Net revenue / orders (money, 2 places)."""
        return _money(self.revenue / self.orders) if self.orders else None

    @property
    def purchase_frequency(self) -> float | None:
        """Orders / unique customers."""
        return _ratio(self.orders, self.customers)

    @property
    def repeat_purchase_rate(self) -> float | None:
        """Customers with more than one order / customers."""
        return _ratio(self.repeat_customers, self.customers)

    @property
    def member_revenue_share(self) -> float | None:
        """Revenue from members' orders / all revenue."""
        return _ratio(self.member_revenue, self.revenue)


def order_kpis(*, program: Program, start: datetime, end: datetime) -> OrderKpis:
    """Orders, guests, revenue, customers and repeat customers of the period: two queries."""
    purchases = _counted_purchases(program, start, end)
    totals = purchases.aggregate(
        orders=Count("pk"),
        guest_orders=Count("pk", filter=Q(member__isnull=True)),
        revenue=Sum(_NET, output_field=_MONEY),
        member_revenue=Sum(_NET, filter=Q(member__isnull=False), output_field=_MONEY),
    )
    # One row per customer (GROUP BY the customer key), counted in an outer query.
    customers = (
        purchases.values(customer=customer_key())
        .annotate(orders=Count("pk"))
        .aggregate(customers=Count("customer"), repeat=Count("customer", filter=Q(orders__gt=1)))
    )
    return OrderKpis(
        orders=totals["orders"],
        guest_orders=totals["guest_orders"],
        revenue=_money(totals["revenue"]),
        member_revenue=_money(totals["member_revenue"]),
        customers=customers["customers"],
        repeat_customers=customers["repeat"],
    )


# --- customer lifetime value ---------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    previous_customers: int  # customers of the period before
    retained: int  # ... of whom bought again in this period

    @property
    def churn(self) -> float | None:
        """Share of the previous period's customers who did not buy in this period."""
        return _ratio(self.previous_customers - self.retained, self.previous_customers)


def retention(*, program: Program, start: datetime, end: datetime) -> Retention:
    """How many of the previous equal-length period's customers bought again in ``[start, end)``:
    one query (purchases of both periods grouped by customer)."""
    both = _counted_purchases(program, start - (end - start), end)
    row = (
        both.values(customer=customer_key())
        .annotate(
            before=Count("pk", filter=Q(occurred_at__lt=start)),
            during=Count("pk", filter=Q(occurred_at__gte=start)),
        )
        .aggregate(
            previous=Count("customer", filter=Q(before__gt=0)),
            retained=Count("customer", filter=Q(before__gt=0, during__gt=0)),
        )
    )
    return Retention(previous_customers=row["previous"], retained=row["retained"])


@dataclass(frozen=True)
class LifetimeValue:
    """``value = purchases_per_year x average_order_value x expected_years``, each factor shown."""

    purchases_per_year: Decimal | None
    average_order_value: Decimal | None
    expected_years: Decimal | None
    value: Decimal | None
    yearly_churn: float | None = None  # what ``expected_years`` was derived from, when it was
    expected_years_source: str = "given"  # "given", "churn", "cap" (churn 0 or tiny) or "unknown"


def _years(period: timedelta) -> Decimal:
    return Decimal(period.total_seconds()) / Decimal(86400) / DAYS_PER_YEAR


def customer_lifetime_value(
    *,
    program: Program,
    start: datetime,
    end: datetime,
    purchases_per_year: Decimal | int | None = None,
    average_order_value: Decimal | int | None = None,
    expected_years: Decimal | int | None = None,
    max_years: Decimal | int = MAX_EXPECTED_YEARS,
    orders: OrderKpis | None = None,
) -> LifetimeValue:
    """Customer lifetime value = purchases per year x average order value x expected years retained.

    Each factor may be given; the ones left out are estimated from ``[start, end)``:

    - purchases per year: purchase frequency (orders / customers) scaled to a year
      (x 365 / days in the period);
    - average order value: net revenue / orders;
    - expected years retained: 1 / yearly churn, where churn is the share of the previous
      equal-length period's customers who did not buy in this one (scaled to a year as
      ``1 - (1 - churn) ** (365 / days)`` for other lengths), capped at ``max_years``.

    With all three given it runs no query: 12 x 50 x 8 = 4800. ``orders`` (the period's
    :func:`order_kpis`) saves two queries when the caller has them. Up to three queries.
    """
    if purchases_per_year is None or average_order_value is None:
        orders = orders or order_kpis(program=program, start=start, end=end)
    years_in_period = _years(end - start)
    if purchases_per_year is None and orders.purchase_frequency is not None and years_in_period > 0:
        purchases_per_year = (Decimal(orders.orders) / Decimal(orders.customers) / years_in_period).quantize(CENT)
    if average_order_value is None:
        average_order_value = orders.average_order_value
    source, churn = "given", None
    if expected_years is None:
        churn = retention(program=program, start=start, end=end).churn
        if churn is not None and years_in_period > 0:
            churn = 1 - (1 - churn) ** (1 / float(years_in_period))  # per year
        if churn is None:
            source = "unknown"
        elif churn <= 0 or 1 / churn > float(max_years):
            expected_years, source = Decimal(max_years), "cap"
        else:
            expected_years, source = Decimal(1 / churn).quantize(CENT), "churn"
    factors = (purchases_per_year, average_order_value, expected_years)
    value = None
    if None not in factors:
        value = (Decimal(purchases_per_year) * Decimal(average_order_value) * Decimal(expected_years)).quantize(CENT)
    return LifetimeValue(
        purchases_per_year=None if purchases_per_year is None else Decimal(purchases_per_year),
        average_order_value=None if average_order_value is None else Decimal(average_order_value),
        expected_years=None if expected_years is None else Decimal(expected_years),
        value=value,
        yearly_churn=churn,
        expected_years_source=source,
    )


# --- points -----------------------------------------------------------------------------------


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


# --- members ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierCount:
    tier_id: int | None  # None: members without a tier
    name: str
    colour: str
    members: int


@dataclass(frozen=True)
class SegmentCount:
    segment: str  # a Segment value, or "" for members not scored yet
    label: str
    members: int


@dataclass(frozen=True)
class MemberKpis:
    total: int  # members who joined before the end of the period
    new: int  # ... of whom joined in the period
    moved_into_at_risk: int  # members who entered "at risk" in the 7 days before the end
    current: int | None = None  # members now (what tiers and segments add up to)
    tiers: list[TierCount] = field(default_factory=list)  # now, lowest rank first, "no tier" last
    segments: list[SegmentCount] = field(default_factory=list)  # now, in Segment order, "not scored" last


def member_kpis(*, program: Program, start: datetime, end: datetime, with_breakdown: bool = True) -> MemberKpis:
    """Member counts for the period (two queries) and, with ``with_breakdown``, today's members
    per tier and per segment (two more)."""
    counts = Member.objects.filter(program=program).aggregate(
        current=Count("pk"),
        total=Count("pk", filter=Q(joined_at__lt=end)),
        new=Count("pk", filter=Q(joined_at__gte=start, joined_at__lt=end)),
        no_tier=Count("pk", filter=Q(tier__isnull=True)),
    )
    moved = SegmentChange.objects.filter(
        program=program, to_segment=AT_RISK, changed_at__gte=end - RECENT_MOVES, changed_at__lt=end
    ).aggregate(members=Count("member", distinct=True))["members"]
    if not with_breakdown:
        return MemberKpis(total=counts["total"], new=counts["new"], moved_into_at_risk=moved)
    tiers = [
        TierCount(tier.pk, tier.name, tier.colour, tier.n)
        for tier in Tier.objects.filter(program=program)
        .annotate(n=Count("members"))
        .only("name", "colour", "rank")
        .order_by("rank")
    ]
    tiers.append(TierCount(None, "", "", counts["no_tier"]))
    per_segment = dict(
        CustomerHealth.objects.filter(program=program)
        .order_by()
        .values("segment")
        .annotate(n=Count("pk"))
        .values_list("segment", "n")
    )
    segments = [SegmentCount(value, str(label), per_segment.get(value, 0)) for value, label in Segment.choices]
    segments.append(SegmentCount("", "", max(counts["current"] - sum(per_segment.values()), 0)))
    return MemberKpis(
        total=counts["total"],
        new=counts["new"],
        moved_into_at_risk=moved,
        current=counts["current"],
        tiers=tiers,
        segments=segments,
    )


# --- campaigns --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignResult:
    campaign_id: int
    name: str
    is_active: bool
    report: dict  # selectors.campaign_report: all-time figures against the control group


def campaign_kpis(
    *, program: Program, start: datetime | None = None, end: datetime | None = None
) -> list[CampaignResult]:
    """Each campaign's report (:func:`loyalty.selectors.campaign_report`, all-time, not per period):
    one query for the campaigns and one per campaign."""
    campaigns = Campaign.objects.filter(program=program).only("name", "is_active").order_by("name", "pk")
    return [CampaignResult(c.pk, c.name, c.is_active, campaign_report(campaign=c)) for c in campaigns]


# --- monthly series ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MonthRevenue:
    month: date  # the first of the month, in the current time zone
    member: Decimal
    guest: Decimal

    @property
    def total(self) -> Decimal:
        return self.member + self.guest


@dataclass(frozen=True)
class MonthPoints:
    month: date
    issued: int
    redeemed: int


def months_between(start: datetime, end: datetime) -> list[date]:
    """First days of the months ``[start, end)`` touches, in the current time zone."""
    first = timezone.localtime(start).date().replace(day=1)
    last = timezone.localtime(end - timedelta(microseconds=1)).date().replace(day=1)
    months = []
    while first <= last:
        months.append(first)
        first = (first + timedelta(days=32)).replace(day=1)
    return months


def _month(field_name: str) -> TruncMonth:
    # Truncated in the current time zone (SQLite and PostgreSQL alike), returned as a date.
    return TruncMonth(field_name, output_field=DateField(), tzinfo=timezone.get_current_timezone())


def revenue_by_month(*, program: Program, start: datetime, end: datetime) -> list[MonthRevenue]:
    """Net revenue per month, members' orders and guest orders apart; every month, zeros included. One query."""
    rows = (
        _counted_purchases(program, start, end)
        .annotate(month=_month("occurred_at"))
        .values("month")
        .annotate(
            member_revenue=Sum(_NET, filter=Q(member__isnull=False), output_field=_MONEY),
            guest_revenue=Sum(_NET, filter=Q(member__isnull=True), output_field=_MONEY),
        )
    )
    found = {row["month"]: row for row in rows}
    return [
        MonthRevenue(
            month,
            _money(found.get(month, {}).get("member_revenue")),
            _money(found.get(month, {}).get("guest_revenue")),
        )
        for month in months_between(start, end)
    ]


def points_by_month(*, program: Program, start: datetime, end: datetime) -> list[MonthPoints]:
    """Points issued and redeemed per month; every month, zeros included. One query."""
    rows = (
        PointsEntry.objects.filter(program=program, created_at__gte=start, created_at__lt=end)
        .order_by()
        .annotate(month=_month("created_at"))
        .values("month")
        .annotate(issued=Sum("points", filter=_ISSUED), redeemed=Sum("points", filter=_SPENT))
    )
    found = {row["month"]: row for row in rows}
    return [
        MonthPoints(month, found.get(month, {}).get("issued") or 0, -(found.get(month, {}).get("redeemed") or 0))
        for month in months_between(start, end)
    ]


# --- customer voice: NPS and CSAT -----------------------------------------------------------------

#: CSAT answers of 4 or 5 count as satisfied.
CSAT_SATISFIED_MIN = 4


def _nps_aggregates() -> dict:
    return {
        "responses": Count("pk"),
        "promoters": Count("pk", filter=nps_band_q(PROMOTER)),
        "passives": Count("pk", filter=nps_band_q(PASSIVE)),
        "detractors": Count("pk", filter=nps_band_q(DETRACTOR)),
        "csat_answers": Count("csat"),
        "csat_satisfied": Count("pk", filter=Q(csat__gte=CSAT_SATISFIED_MIN)),
        "csat_sum": Sum("csat"),
    }


@dataclass(frozen=True)
class NpsSummary:
    """Survey answers of a period. NPS and CSAT are ``None`` without answers to their question."""

    responses: int  # responses submitted in the period (any question answered)
    promoters: int
    passives: int
    detractors: int  # by NPS only (the "detractor" flag on a response also counts CSAT 1-2)
    csat_answers: int
    csat_satisfied: int  # CSAT 4-5
    csat_sum: int = 0

    @property
    def nps_answers(self) -> int:
        return self.promoters + self.passives + self.detractors

    def _share(self, part: int) -> float | None:
        return _ratio(part, self.nps_answers)

    @property
    def promoter_share(self) -> float | None:
        return self._share(self.promoters)

    @property
    def passive_share(self) -> float | None:
        return self._share(self.passives)

    @property
    def detractor_share(self) -> float | None:
        return self._share(self.detractors)

    @property
    def nps(self) -> int | None:
        """Net Promoter Score, -100..100, as ``loyalty.nps`` defines it."""
        return nps_score(promoters=self.promoters, detractors=self.detractors, answers=self.nps_answers)

    @property
    def csat(self) -> float | None:
        """CSAT: share of CSAT answers that are 4 or 5, as a fraction (0.8 = 80 %)."""
        return _ratio(self.csat_satisfied, self.csat_answers)

    @property
    def csat_average(self) -> Decimal | None:
        """Average CSAT answer, 1-5, two places."""
        if not self.csat_answers:
            return None
        return (Decimal(self.csat_sum) / Decimal(self.csat_answers)).quantize(CENT, rounding=ROUND_HALF_UP)


def _nps_summary(row: dict) -> NpsSummary:
    return NpsSummary(
        responses=row.get("responses") or 0,
        promoters=row.get("promoters") or 0,
        passives=row.get("passives") or 0,
        detractors=row.get("detractors") or 0,
        csat_answers=row.get("csat_answers") or 0,
        csat_satisfied=row.get("csat_satisfied") or 0,
        csat_sum=row.get("csat_sum") or 0,
    )


def nps_summary(*, program: Program, start: datetime, end: datetime) -> NpsSummary:
    """Promoters, passives, detractors, NPS and CSAT of the responses submitted in ``[start, end)``: one query."""
    row = SurveyResponse.objects.filter(program=program, submitted_at__gte=start, submitted_at__lt=end).aggregate(
        **_nps_aggregates()
    )
    return _nps_summary(row)


@dataclass(frozen=True)
class MonthNps:
    month: date
    summary: NpsSummary


def _months_back(end: datetime, months: int) -> datetime:
    """Midnight of the first day of the month ``months - 1`` months before ``end``'s month (local time)."""
    first = timezone.localtime(end - timedelta(microseconds=1)).date().replace(day=1)
    for _i in range(months - 1):
        first = (first - timedelta(days=1)).replace(day=1)
    return timezone.make_aware(datetime.combine(first, datetime.min.time()))


def nps_trend(
    *, program: Program, months: int = 12, end: datetime | None = None, start: datetime | None = None
) -> list[MonthNps]:
    """NPS and CSAT per calendar month, every month (empty ones too): the ``months`` months up to
    ``end`` (default: now), or the months ``[start, end)`` touches when ``start`` is given. One query."""
    end = end or timezone.now()
    start = start or _months_back(end, months)
    rows = (
        SurveyResponse.objects.filter(program=program, submitted_at__gte=start, submitted_at__lt=end)
        .order_by()
        .annotate(month=_month("submitted_at"))
        .values("month")
        .annotate(**_nps_aggregates())
    )
    found = {row["month"]: row for row in rows}
    return [MonthNps(month, _nps_summary(found.get(month, {}))) for month in months_between(start, end)]


# --- everything -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodKpis:
    start: datetime
    end: datetime
    orders: OrderKpis
    lifetime_value: LifetimeValue
    points: PointsKpis
    members: MemberKpis
    voice: NpsSummary | None = None  # survey answers submitted in the period


@dataclass(frozen=True)
class Dashboard:
    program: Program
    current: PeriodKpis
    previous: PeriodKpis | None  # the equal-length period just before, for deltas
    campaigns: list[CampaignResult]
    revenue_by_month: list[MonthRevenue]
    points_by_month: list[MonthPoints]
    nps_by_month: list[MonthNps] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return self.current.start

    @property
    def end(self) -> datetime:
        return self.current.end


def _period_kpis(program: Program, start: datetime, end: datetime, *, current: bool) -> PeriodKpis:
    orders = order_kpis(program=program, start=start, end=end)
    # CLV is estimated over the year up to the period's end, whatever the period's length:
    # a month's purchase frequency and churn say little about years.
    clv_start = end - CLV_WINDOW
    clv = customer_lifetime_value(
        program=program, start=clv_start, end=end, orders=orders if clv_start == start else None
    )
    return PeriodKpis(
        start=start,
        end=end,
        orders=orders,
        lifetime_value=clv,
        points=points_kpis(program=program, start=start, end=end, with_liability=current),
        members=member_kpis(program=program, start=start, end=end, with_breakdown=current),
        voice=nps_summary(program=program, start=start, end=end),
    )


def dashboard(*, program: Program, start: datetime, end: datetime, compare: bool = True) -> Dashboard:
    """Every KPI of ``[start, end)``, and with ``compare`` the same for ``[start - (end - start), start)``.

    At most 25 queries plus one per campaign, however much data there is (21 plus one per
    campaign for a 365-day period, whose CLV window is the period itself): NPS and CSAT add one
    per period and one for the monthly series.
    """
    if end <= start:
        raise ValueError("the period must end after it starts")
    previous = None
    if compare:
        previous = _period_kpis(program, start - (end - start), start, current=False)
    return Dashboard(
        program=program,
        current=_period_kpis(program, start, end, current=True),
        previous=previous,
        campaigns=campaign_kpis(program=program, start=start, end=end),
        revenue_by_month=revenue_by_month(program=program, start=start, end=end),
        points_by_month=points_by_month(program=program, start=start, end=end),
        nps_by_month=nps_trend(program=program, start=start, end=end),
    )
