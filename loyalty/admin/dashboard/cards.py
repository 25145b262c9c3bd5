"""The dashboard's KPI cards: each value with its change since the previous period, in figures and in words."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from ...nps import nps_text as _nps_text
from ...selectors import kpis
from .formatters import _number, count, decimal, money, percent


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    help: str = ""  # the definition, shown under the value
    previous: str = ""  # formatted previous value; empty: no comparison
    delta: str = ""  # "+12.3 %" (relative) or "+2.1 pp" (rates)
    trend: str = ""  # "up", "down" or "flat"
    tone: str = "neutral"  # "good", "bad" or "neutral": colour of the delta
    spoken: str = ""  # the comparison in words, for screen readers
    note: str = ""  # e.g. how CLV was worked out


def _card(
    label: str,
    current,
    previous,
    fmt,
    *,
    help: str,
    better: int = 1,
    rate: bool = False,
    score: bool = False,
    compare: bool = True,
    note: str = "",
) -> Card:
    """A card with ``current`` and, with ``compare``, its change since ``previous``.

    ``better``: 1 when up is good, -1 when down is good, 0 when neither. ``rate``: the change
    is in percentage points; ``score``: in the value's own points (NPS); otherwise relative to
    the previous value.
    """
    value = fmt(current)
    if not compare or previous is None:  # None: nothing to compare with (e.g. CLV without the year before)
        return Card(label, value, help, note=note)
    prev_text = fmt(previous)
    if current is None or (not rate and not score and not previous):
        spoken = _("No comparable value in the previous period.")
        return Card(label, value, help, prev_text, "", "", "neutral", spoken, note)
    diff = (float(current) - float(previous)) * (100 if rate else 1)
    change = diff if rate or score else diff / float(previous) * 100
    suffix = "pp" if rate else (_("pts") if score else "%")
    if round(change, 1) == 0:
        trend, tone = "flat", "neutral"
        delta = f"±0\u00a0{suffix}"
        spoken = _("Unchanged from %(previous)s in the previous period.") % {"previous": prev_text}
    else:
        trend = "up" if change > 0 else "down"
        tone = "neutral" if not better else ("good" if (change > 0) == (better > 0) else "bad")
        amount = _number(abs(change), 0 if score else 1)
        delta = f"{'+' if change > 0 else '−'}{amount}\u00a0{suffix}"
        unit = _("percentage points") if rate else (_("points") if score else "%")
        words = _("Up %(amount)s %(unit)s") if change > 0 else _("Down %(amount)s %(unit)s")
        spoken = (
            (words % {"amount": amount, "unit": unit})
            + " "
            + (_("from %(previous)s in the previous period.") % {"previous": prev_text})
        )
    return Card(label, value, help, prev_text, delta, trend, tone, spoken, note)


def _clv_note(clv: kpis.LifetimeValue, currency: str) -> str:
    if clv.value is None:
        if clv.expected_years_source == "unknown":
            return _("Needs a year of customers before this one to estimate how long customers stay.")
        return _("Not enough orders yet.")
    note = _("%(ppy)s orders a year × %(aov)s × %(years)s years") % {
        "ppy": decimal(clv.purchases_per_year),
        "aov": money(clv.average_order_value, currency),
        "years": decimal(clv.expected_years),
    }
    if clv.expected_years_source == "churn":
        note += " " + _("(1 / yearly churn of %(churn)s)") % {"churn": percent(clv.yearly_churn)}
    elif clv.expected_years_source == "cap":
        note += " " + _("(churn near 0: capped)")
    return note


def build_cards(board: kpis.Dashboard) -> dict[str, list[Card]]:
    cur, prev = board.current, board.previous
    compare = prev is not None
    currency = board.program.currency

    def pair(getter):
        return getter(cur), (getter(prev) if compare else None)

    def card(label, getter, fmt, **kwargs):
        current, previous = pair(getter)
        return _card(label, current, previous, fmt, compare=compare, **kwargs)

    def cash(value):
        return money(value, currency)

    sales = [
        card(_("Revenue"), lambda p: p.orders.revenue, cash, help=_("Paid orders net of refunds.")),
        card(_("Orders"), lambda p: p.orders.orders, count, help=_("Paid and partly refunded orders.")),
        card(
            _("Average order value"),
            lambda p: p.orders.average_order_value,
            cash,
            help=_("Revenue / orders."),
        ),
        card(
            _("Customers"),
            lambda p: p.orders.customers,
            count,
            help=_("Members and guest emails with an order."),
        ),
        card(
            _("Purchase frequency"),
            lambda p: p.orders.purchase_frequency,
            decimal,
            help=_("Orders / customers."),
        ),
        card(
            _("Repeat purchase rate"),
            lambda p: p.orders.repeat_purchase_rate,
            percent,
            help=_("Customers with 2+ orders / customers."),
            rate=True,
        ),
        card(
            _("Guest checkout rate"),
            lambda p: p.orders.guest_checkout_rate,
            percent,
            help=_("Guest orders / orders."),
            rate=True,
            better=0,
        ),
        card(
            _("Revenue from members"),
            lambda p: p.orders.member_revenue_share,
            percent,
            help=_("Members' revenue / revenue."),
            rate=True,
            note=_("%(amount)s from members") % {"amount": cash(cur.orders.member_revenue)},
        ),
        card(
            _("Customer lifetime value"),
            lambda p: p.lifetime_value.value,
            cash,
            help=_("Orders a year × AOV × years retained (last 365 days)."),
            note=_clv_note(cur.lifetime_value, currency),
        ),
    ]
    points = [
        card(
            _("Points issued"), lambda p: p.points.issued, count, help=_("Earned, bonus and added by staff."), better=0
        ),
        card(_("Points redeemed"), lambda p: p.points.redeemed, count, help=_("Spent on rewards.")),
        card(
            _("Points spent at checkout"),
            lambda p: p.points.checkout_points,
            count,
            help=_("Used as money on orders placed in the period."),
            note=_("%(value)s off orders; %(returned)s points given back after refunds")
            % {"value": cash(cur.points.checkout_value), "returned": count(cur.points.checkout_returned)},
        ),
        card(
            _("Redemption rate"),
            lambda p: p.points.redemption_rate,
            percent,
            help=_("Points spent on rewards and at checkout / points issued."),
            rate=True,
        ),
        card(_("Points expired"), lambda p: p.points.expired, count, help=_("Lapsed unspent."), better=-1),
        card(_("Points reversed"), lambda p: p.points.reversed, count, help=_("Taken back for refunds."), better=-1),
        _card(
            _("Outstanding liability"),
            cur.points.liability,
            None,
            cash,
            compare=False,
            help=_("Unspent points now × point value, and codes of points used at checkout not used yet."),
            note=_("%(points)s points at %(value)s each")
            % {"points": count(cur.points.liability_points), "value": f"{board.program.point_value.normalize():f}"},
        ),
    ]
    members = [
        card(_("Members"), lambda p: p.members.total, count, help=_("Joined before the period's end.")),
        card(_("New members"), lambda p: p.members.new, count, help=_("Joined in the period.")),
        card(
            _("Moved into at risk"),
            lambda p: p.members.moved_into_at_risk,
            count,
            help=_("In the 7 days before the period's end."),
            better=-1,
        ),
    ]
    return {"sales": sales, "points": points, "members": members, "voice": voice_cards(board)}


def voice_cards(board: kpis.Dashboard) -> list[Card]:
    """NPS and CSAT of the period's survey answers, against the previous period."""
    cur, prev = board.current.voice, board.previous.voice if board.previous else None
    compare = prev is not None

    def card(label, getter, fmt, **kwargs):
        return _card(label, getter(cur), getter(prev) if compare else None, fmt, compare=compare, **kwargs)

    def band(label, getter, share, help, better):
        return card(
            label,
            getter,
            count,
            help=help,
            better=better,
            note=_("%(share)s of NPS answers") % {"share": percent(share(cur))},
        )

    return [
        card(
            _("NPS"),
            lambda v: v.nps,
            _nps_text,
            help=_("Net Promoter Score: % promoters − % detractors, from −100 to +100."),
            score=True,
            note=_("%(n)s NPS answers") % {"n": count(cur.nps_answers)},
        ),
        band(_("Promoters"), lambda v: v.promoters, lambda v: v.promoter_share, _("NPS 9–10."), 1),
        band(_("Passives"), lambda v: v.passives, lambda v: v.passive_share, _("NPS 7–8."), 0),
        band(_("Detractors"), lambda v: v.detractors, lambda v: v.detractor_share, _("NPS 0–6."), -1),
        card(
            _("CSAT"),
            lambda v: v.csat,
            percent,
            help=_("Share of CSAT answers that are 4 or 5 (of 5)."),
            rate=True,
            note=_("average %(avg)s of 5, %(n)s answers")
            % {"avg": decimal(cur.csat_average), "n": count(cur.csat_answers)},
        ),
        card(_("Survey responses"), lambda v: v.responses, count, help=_("Answers submitted in the period.")),
    ]
