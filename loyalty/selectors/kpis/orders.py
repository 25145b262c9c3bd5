"""Orders and customers: revenue, AOV, frequency, repeat and guest rates, retention, lifetime value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum

from ...models import Program
from .common import _MONEY, _NET, CENT, DAYS_PER_YEAR, _counted_purchases, _money, _ratio, customer_key


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


#: The window customer lifetime value is estimated from on the dashboard, whatever the period.
CLV_WINDOW = timedelta(days=365)


#: Expected years retained never exceed this when estimated from churn (churn 0 would be forever).
MAX_EXPECTED_YEARS = Decimal(10)


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
