"""The staff KPI dashboard: ``/admin/loyalty/program/dashboard/`` (URL name ``admin:loyalty_dashboard``).

A read-only admin page over :mod:`loyalty.kpis`: KPI cards compared with the previous period,
tables, and charts drawn here as inline SVG (no JavaScript, no CDN: it works offline), each
with a title, a description and its data as a table. Staff need ``loyalty.view_member``.

The URL hangs off the programme admin: :class:`ProgramAdminWithDashboard` extends
``ProgramAdmin`` with one URL and replaces it on the default admin site when this module is
imported (from ``loyalty/admin/__init__.py``, after ``base``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import kpis
from ..models import Program, Segment
from ..nps import nps_text as _nps_text
from .base import ProgramAdmin

VIEW_PERMISSION = "loyalty.view_member"
PERIOD_CHOICES = [
    ("30", gettext_lazy("Last 30 days")),
    ("90", gettext_lazy("Last 90 days")),
    ("365", gettext_lazy("Last 365 days")),
    ("custom", gettext_lazy("Custom dates")),
]
DEFAULT_DAYS = 365
MAX_CUSTOM_DAYS = 3 * 366  # the monthly charts stay readable


# --- formatting -------------------------------------------------------------------------------


def _number(value, places: int = 0) -> str:
    """Localised, grouped, rounded half up (144.375 -> "144.4")."""
    exact = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return number_format(exact, places, force_grouping=True)


def money(value: Decimal | None, currency: str) -> str:
    return "–" if value is None else f"{_number(value, 2)}\u00a0{currency}"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{_number(value * 100, 1)}\u00a0%"


def decimal(value, places: int = 2) -> str:
    return "–" if value is None else _number(value, places)


def count(value: int | None) -> str:
    return "–" if value is None else _number(value)


def _day(value: date) -> str:
    return date_format(value, "j M Y")


def period_label(start: datetime, end: datetime) -> str:
    """ "1 Dec 2025 – 30 Nov 2026": the period's first and last day (``end`` is exclusive)."""
    first = timezone.localtime(start).date()
    last = timezone.localtime(end - timedelta(microseconds=1)).date()
    return f"{_day(first)} – {_day(last)}"


# --- the filter form --------------------------------------------------------------------------


class DashboardForm(forms.Form):
    """Query parameters: ``program``, ``period`` (30/90/365 days or custom) and ``start``/``end`` dates."""

    program = forms.TypedChoiceField(label=gettext_lazy("Programme"), coerce=int, required=False)
    period = forms.ChoiceField(label=gettext_lazy("Period"), choices=PERIOD_CHOICES, required=False)
    start = forms.DateField(
        label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    end = forms.DateField(
        label=gettext_lazy("To (inclusive)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    shown = forms.CharField(required=False, widget=forms.HiddenInput)  # the period the page showed

    def __init__(self, *args, programs: list[Program], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["program"].choices = [
            (program.pk, program.name if program.is_active else _("%(name)s (inactive)") % {"name": program.name})
            for program in programs
        ]

    def clean(self):
        data = super().clean()
        start, end, period = data.get("start"), data.get("end"), data.get("period")
        # Without JavaScript both the select and the dates are sent: dates set a custom period unless
        # the select was changed away from what the page showed (``shown``) to one of the presets.
        picked_preset = period and period != "custom" and data.get("shown") and period != data["shown"]
        custom = period == "custom" or ((start or end) and not picked_preset)
        if not custom:
            data["start"] = data["end"] = None
        elif "start" not in self.errors and "end" not in self.errors:
            if not start or not end:
                raise forms.ValidationError(_("Give both dates of a custom period."), code="incomplete")
            if end < start:
                raise forms.ValidationError(_("The period cannot end before it starts."), code="reversed")
            if (end - start).days + 1 > MAX_CUSTOM_DAYS:
                raise forms.ValidationError(
                    _("A custom period can be at most %(days)d days long.") % {"days": MAX_CUSTOM_DAYS}, code="long"
                )
            data["period"] = "custom"
        return data


def error_messages(form: DashboardForm) -> list[str]:
    """The form's errors as sentences, each with its field's label."""
    messages = []
    for name, errors in form.errors.items():
        prefix = "" if name == NON_FIELD_ERRORS else f"{form.fields[name].label}: "
        messages.extend(prefix + str(error) for error in errors)
    return messages


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def resolve_period(form: DashboardForm) -> tuple[datetime, datetime, str]:
    """``(start, end, period)`` from a validated form; defaults for anything missing or invalid.

    Periods are whole local days: "last N days" ends at the end of today.
    """
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    if data.get("period") == "custom":
        return _midnight(data["start"]), _midnight(data["end"] + timedelta(days=1)), "custom"
    days = int(data.get("period") or DEFAULT_DAYS)
    end = _midnight(timezone.localdate() + timedelta(days=1))
    return end - timedelta(days=days), end, str(days)


def choose_program(form: DashboardForm, programs: list[Program]) -> Program | None:
    """The programme asked for, else the oldest active one, else the oldest."""
    wanted = form.cleaned_data.get("program") if form.is_bound and "program" not in form.errors else None
    by_pk = {program.pk: program for program in programs}
    if wanted in by_pk:
        return by_pk[wanted]
    active = [program for program in programs if program.is_active]
    return (active or programs or [None])[0]


# --- KPI cards --------------------------------------------------------------------------------


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


# --- charts: inline SVG -------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # class on the bars, coloured by dashboard.css
    values: list


@dataclass(frozen=True)
class Chart:
    svg: SafeString
    headers: list[str]  # the data table fallback
    rows: list[list[str]]
    legend: list[Series] = field(default_factory=list)  # shown above the chart, in HTML


def nice_ceiling(value: float) -> float:
    """The next "round" number at or above ``value`` for an axis: 1, 2, 2.5, 5 x 10^k."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover


def _short(value: float) -> str:
    """Axis labels: 1,500 -> "1.5k", 2,000,000 -> "2M"."""
    for limit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if abs(value) >= limit:
            scaled = value / limit
            return f"{_number(scaled, 0 if scaled == int(scaled) else 1)}{suffix}"
    return _number(value, 0 if value == int(value) else 1)


def _px(value: float) -> str:
    return f"{value:.1f}"


def _month_label(month: date, first: bool) -> str:
    return date_format(month, "M" if month.month != 1 and not first else "M y")


def _svg_open(*, chart_id: str, title: str, description: str, width: int, height: int, css: str = "") -> str:
    """A chart's opening ``<svg>`` with its accessible title and description (screen readers read both)."""
    return format_html(
        '<svg class="{}" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-t {}-d" '
        'xmlns="http://www.w3.org/2000/svg"><title id="{}-t">{}</title><desc id="{}-d">{}</desc>',
        f"ld-chart {css}".strip(),
        width,
        height,
        chart_id,
        chart_id,
        chart_id,
        title,
        chart_id,
        description,
    )


def bar_chart(
    *, chart_id: str, title: str, description: str, months: list[date], series: list[Series], stacked: bool, fmt
) -> SafeString:
    """Monthly bars, ``series`` stacked or side by side, with a y axis, month labels and a legend."""
    width, height = 960, 300
    left, right, top, bottom = 92, 12, 24, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    if stacked:
        peak = max((sum(float(s.values[i]) for s in series) for i in range(len(months))), default=0)
    else:
        peak = max((float(v) for s in series for v in s.values), default=0)
    step = nice_ceiling(peak / 4)
    top_value = step * 4
    parts = [_svg_open(chart_id=chart_id, title=title, description=description, width=width, height=height)]
    # Grid lines and y labels.
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(
            format_html(
                '<line class="ld-grid{}" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="ld-axis" x="{}" y="{}" text-anchor="end">{}</text>',
                " ld-grid--base" if i == 0 else "",
                left,
                width - right,
                _px(y),
                _px(y),
                left - 6,
                _px(y + 4),
                _short(step * i),
            )
        )
    slot = plot_w / max(len(months), 1)
    bar_w = slot * 0.7 if stacked else slot * 0.8 / max(len(series), 1)
    every = max(1, math.ceil(len(months) / 13))  # at most ~13 month labels
    for i, month in enumerate(months):
        x0 = left + slot * i + (slot - (bar_w if stacked else bar_w * len(series))) / 2
        base = top + plot_h
        label = date_format(month, "F Y")
        for j, s in enumerate(series):
            h = plot_h * float(s.values[i]) / top_value
            bx = x0 if stacked else x0 + j * bar_w
            if h > 0:
                parts.append(
                    format_html(
                        '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}: {} {}</title></rect>',
                        s.css,
                        _px(bx),
                        _px(base - h),
                        _px(bar_w),
                        _px(h),
                        label,
                        s.name,
                        fmt(s.values[i]),
                    )
                )
            if stacked:
                base -= h
        if i % every == 0:
            parts.append(
                format_html(
                    '<text class="ld-axis{}" x="{}" y="{}" text-anchor="middle">{}</text>',
                    " ld-axis--minor" if (i // every) % 2 else "",
                    _px(left + slot * i + slot / 2),
                    height - 8,
                    _month_label(month, i == 0),
                )
            )
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(parts))


def hbar_chart(*, chart_id: str, title: str, description: str, rows: list[tuple[str, int, str]]) -> SafeString:
    """Horizontal bars, one per ``(label, value, css class)``, the value written at the bar's end."""
    width, label_w, row_h, top = 480, 150, 26, 4
    height = top * 2 + row_h * len(rows)
    peak = max((value for _label, value, _css in rows), default=0) or 1
    bar_room = width - label_w - 48
    parts = [
        _svg_open(
            chart_id=chart_id, title=title, description=description, width=width, height=height, css="ld-chart--bars"
        )
    ]
    for i, (label, value, css) in enumerate(rows):
        y = top + i * row_h
        w = bar_room * value / peak
        parts.append(
            format_html(
                '<text class="ld-label" x="{}" y="{}" text-anchor="end">{}</text>'
                '<rect class="{}" x="{}" y="{}" width="{}" height="{}" rx="2"><title>{}: {}</title></rect>'
                '<text class="ld-value" x="{}" y="{}">{}</text>',
                label_w - 8,
                _px(y + row_h / 2 + 4),
                label,
                css,
                label_w,
                _px(y + 4),
                _px(max(w, 1 if value else 0)),
                row_h - 8,
                label,
                count(value),
                _px(label_w + w + 6),
                _px(y + row_h / 2 + 4),
                count(value),
            )
        )
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(parts))


def revenue_chart(board: kpis.Dashboard) -> Chart:
    currency = board.program.currency
    months = [row.month for row in board.revenue_by_month]
    members = [row.member for row in board.revenue_by_month]
    guests = [row.guest for row in board.revenue_by_month]
    total = sum(members, Decimal(0)) + sum(guests, Decimal(0))
    series = [
        Series(_("Members (%(currency)s)") % {"currency": currency}, "ld-s-member", members),
        Series(_("Guests (%(currency)s)") % {"currency": currency}, "ld-s-guest", guests),
    ]
    svg = bar_chart(
        chart_id="ld-revenue",
        title=_("Revenue per month: members and guests"),
        description=_(
            "Stacked bars, one per month from %(first)s to %(last)s; members' revenue at the bottom, guest "
            "revenue on top. %(total)s in all. The table below has the figures."
        )
        % {
            "first": date_format(months[0], "F Y") if months else "",
            "last": date_format(months[-1], "F Y") if months else "",
            "total": money(total, currency),
        },
        months=months,
        series=series,
        stacked=True,
        fmt=lambda v: money(v, currency),
    )
    rows = [
        [
            date_format(row.month, "F Y"),
            money(row.member, currency),
            money(row.guest, currency),
            money(row.total, currency),
        ]
        for row in board.revenue_by_month
    ]
    return Chart(svg, [_("Month"), _("Members"), _("Guests"), _("Total")], rows, series)


def points_chart(board: kpis.Dashboard) -> Chart:
    months = [row.month for row in board.points_by_month]
    issued = [row.issued for row in board.points_by_month]
    redeemed = [row.redeemed for row in board.points_by_month]
    series = [Series(_("Issued"), "ld-s-issued", issued), Series(_("Redeemed"), "ld-s-redeemed", redeemed)]
    svg = bar_chart(
        chart_id="ld-points",
        title=_("Points issued and redeemed per month"),
        description=_(
            "Pairs of bars, one pair per month: points issued (%(issued)s in all) and points redeemed "
            "(%(redeemed)s in all). The table below has the figures."
        )
        % {"issued": count(sum(issued)), "redeemed": count(sum(redeemed))},
        months=months,
        series=series,
        stacked=False,
        fmt=count,
    )
    rows = [[date_format(row.month, "F Y"), count(row.issued), count(row.redeemed)] for row in board.points_by_month]
    return Chart(svg, [_("Month"), _("Issued"), _("Redeemed")], rows, series)


def line_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    months: list[date],
    values: list[float | None],
    low: float,
    high: float,
    css: str,
    fmt,
) -> SafeString:
    """A monthly line on a fixed axis ``low``..``high`` (a zero line when it is inside); months
    without a value leave a gap in the line and get no point."""
    width, height = 960, 300
    left, right, top, bottom = 92, 12, 24, 46
    plot_w, plot_h = width - left - right, height - top - bottom

    def y_of(value: float) -> float:
        return top + plot_h - plot_h * (float(value) - low) / (high - low)

    parts = [_svg_open(chart_id=chart_id, title=title, description=description, width=width, height=height)]
    for i in range(5):
        value = low + (high - low) * i / 4
        y = y_of(value)
        parts.append(
            format_html(
                '<line class="ld-grid{}" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="ld-axis" x="{}" y="{}" text-anchor="end">{}</text>',
                " ld-grid--base" if value == 0 or (i == 0 and low > 0) else "",
                left,
                width - right,
                _px(y),
                _px(y),
                left - 6,
                _px(y + 4),
                fmt(value),
            )
        )
    slot = plot_w / max(len(months), 1)
    every = max(1, math.ceil(len(months) / 13))
    runs: list[list[str]] = [[]]
    marks = []  # points and month labels, drawn over the line
    for i, (month, value) in enumerate(zip(months, values, strict=True)):
        x = left + slot * i + slot / 2
        if value is None:
            runs.append([])
        else:
            runs[-1].append(f"{_px(x)},{_px(y_of(value))}")
            marks.append(
                format_html(
                    '<circle class="{}" cx="{}" cy="{}" r="5"><title>{}: {}</title></circle>',
                    css,
                    _px(x),
                    _px(y_of(value)),
                    date_format(month, "F Y"),
                    fmt(value),
                )
            )
        if i % every == 0:
            marks.append(
                format_html(
                    '<text class="ld-axis{}" x="{}" y="{}" text-anchor="middle">{}</text>',
                    " ld-axis--minor" if (i // every) % 2 else "",
                    _px(x),
                    height - 8,
                    _month_label(month, i == 0),
                )
            )
    parts += [
        format_html('<polyline class="{} ld-line" points="{}"></polyline>', css, " ".join(run))
        for run in runs
        if len(run) > 1
    ]
    parts += marks
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(parts))


def nps_chart(board: kpis.Dashboard) -> Chart:
    months = [row.month for row in board.nps_by_month]
    values = [row.summary.nps for row in board.nps_by_month]
    answered = [v for v in values if v is not None]
    svg = line_chart(
        chart_id="ld-nps",
        title=_("NPS over time"),
        description=_(
            "A line with one point per month from %(first)s to %(last)s, on a scale from −100 to +100; months "
            "without NPS answers leave a gap. %(answered)s of %(months)s months have answers. The table below "
            "has the figures."
        )
        % {
            "first": date_format(months[0], "F Y") if months else "",
            "last": date_format(months[-1], "F Y") if months else "",
            "answered": count(len(answered)),
            "months": count(len(months)),
        },
        months=months,
        values=values,
        low=-100,
        high=100,
        css="ld-s-nps",
        fmt=lambda v: _nps_text(int(v)),
    )
    rows = [
        [
            date_format(row.month, "F Y"),
            count(row.summary.responses),
            count(row.summary.promoters),
            count(row.summary.passives),
            count(row.summary.detractors),
            _nps_text(row.summary.nps),
            percent(row.summary.csat),
            decimal(row.summary.csat_average),
        ]
        for row in board.nps_by_month
    ]
    headers = [
        _("Month"),
        _("Responses"),
        _("Promoters"),
        _("Passives"),
        _("Detractors"),
        _("NPS"),
        _("CSAT"),
        _("CSAT average"),
    ]
    return Chart(svg, headers, rows, [Series(_("NPS"), "ld-s-nps", values)])


def segment_chart(segments: list[dict]) -> SafeString:
    rows = [(row["label"], row["members"], "ld-s-at-risk" if row["at_risk"] else "ld-s-segment") for row in segments]
    return hbar_chart(
        chart_id="ld-segments",
        title=_("Members per segment"),
        description=_("One bar per customer segment, longest for the most members; at risk is highlighted. %(rows)s")
        % {"rows": "; ".join(f"{label}: {count(value)}" for label, value, _css in rows)},
        rows=rows,
    )


# --- tables -----------------------------------------------------------------------------------


def _share(part: int, whole: int | None) -> str:
    return percent(part / whole) if whole else "–"


def _members_url(program: Program, **filters) -> str:
    return reverse("admin:loyalty_member_changelist") + "?" + urlencode({"program__id__exact": program.pk, **filters})


def tier_rows(board: kpis.Dashboard) -> list[dict]:
    """Members per tier now, lowest first; "No tier" last (left out when it is empty and there are tiers)."""
    members = board.current.members
    rows = []
    for row in members.tiers:
        if row.tier_id is None:
            if row.members == 0 and len(members.tiers) > 1:
                continue
            name, url = _("No tier"), _members_url(board.program, tier__isnull="True")
        else:
            name, url = row.name, _members_url(board.program, tier__id__exact=row.tier_id)
        rows.append(
            {
                "name": name,
                "colour": row.colour,
                "members": count(row.members),
                "share": _share(row.members, members.current),
                "url": url,
            }
        )
    return rows


def segment_rows(board: kpis.Dashboard) -> list[dict]:
    members = board.current.members
    rows = []
    for row in members.segments:
        if row.segment:
            label, url = row.label, _members_url(board.program, health__segment__exact=row.segment)
        else:
            label, url = _("Not scored yet"), _members_url(board.program, health__segment__isnull="True")
        rows.append(
            {
                "label": label,
                "members": row.members,
                "members_text": count(row.members),
                "share": _share(row.members, members.current),
                "url": url,
                "at_risk": row.segment == Segment.AT_RISK,
            }
        )
    return rows


def campaign_rows(board: kpis.Dashboard) -> list[dict]:
    currency = board.program.currency

    def rate(value) -> str:
        return "–" if value is None else f"{_number(value, 1)}\u00a0%"

    rows = []
    for result in board.campaigns:
        report = result.report
        uplift = report["uplift"]
        rows.append(
            {
                "name": result.name,
                "url": reverse("admin:loyalty_campaign_change", args=[result.campaign_id]),
                "active": result.is_active,
                "sent": count(report["sent"]),
                "opened": count(report["opened"]),
                "clicked": count(report["clicked"]),
                "converted": count(report["converted"]),
                "conversion_rate": rate(report["conversion_rate"]),
                "control_rate": rate(report["control"]["conversion_rate"]),
                "control_members": count(report["control"]["members"]),
                "uplift": "–" if uplift is None else f"{'+' if uplift >= 0 else '−'}{_number(abs(uplift), 1)}\u00a0pp",
                "uplift_tone": "neutral" if not uplift else ("good" if uplift > 0 else "bad"),
                "revenue": money(report["revenue"], currency),
            }
        )
    return rows


# --- the view ---------------------------------------------------------------------------------


def dashboard_view(request: HttpRequest) -> HttpResponse:
    """The dashboard page; wrapped in ``admin_site.admin_view`` (staff only) by the URL below."""
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    programs = list(Program.objects.order_by("created_at", "pk"))
    form = DashboardForm(request.GET or None, programs=programs)
    program = choose_program(form, programs)
    start, end, period = resolve_period(form)
    errors = error_messages(form) if form.is_bound else []
    # The form shows the values in use, not what was typed; the messages say what was wrong.
    initial = {"program": program.pk if program else None, "period": period, "shown": period}
    if period == "custom":
        initial.update(start=timezone.localtime(start).date(), end=timezone.localtime(end).date() - timedelta(1))
    form = DashboardForm(initial=initial, programs=programs)
    context = {
        **admin.site.each_context(request),
        "title": _("Loyalty dashboard"),
        "subtitle": program.name if program else None,
        "form": form,
        "form_errors": errors,
        "program": program,
        "can_add_program": request.user.has_perm("loyalty.add_program"),
        "add_program_url": reverse("admin:loyalty_program_add"),
        "opts": Program._meta,
    }
    if program is not None:
        board = kpis.dashboard(program=program, start=start, end=end)
        cards = build_cards(board)
        segments = segment_rows(board)
        sections = [
            {
                "key": "sales",
                "heading": _("Sales"),
                "cards": cards["sales"],
                "chart": revenue_chart(board),
                "table_summary": _("Revenue per month as a table"),
            },
            {
                "key": "points",
                "heading": _("Points"),
                "cards": cards["points"],
                "chart": points_chart(board),
                "table_summary": _("Points per month as a table"),
            },
            {"key": "members", "heading": _("Members"), "cards": cards["members"], "chart": None},
            {
                "key": "voice",
                "heading": _("Customer voice: NPS and CSAT"),
                "cards": cards["voice"],
                "chart": nps_chart(board),
                "table_summary": _("NPS and CSAT per month as a table"),
            },
        ]
        context.update(
            board=board,
            period_label=period_label(start, end),
            previous_label=period_label(board.previous.start, board.previous.end) if board.previous else "",
            sections=sections,
            tiers=tier_rows(board),
            segments=segments,
            segment_chart=segment_chart(segments),  # its data: the segment table
            moved_into_at_risk=count(board.current.members.moved_into_at_risk),
            moved_url=reverse("admin:loyalty_segmentchange_changelist")
            + "?"
            + urlencode({"to_segment__exact": Segment.AT_RISK.value, "program__id__exact": program.pk}),
            campaigns=campaign_rows(board),
        )
    return TemplateResponse(request, "admin/loyalty/dashboard.html", context)


class ProgramAdminWithDashboard(ProgramAdmin):
    """``ProgramAdmin`` plus the dashboard URL (``admin:loyalty_dashboard``)."""

    def get_urls(self):
        dashboard = path("dashboard/", self.admin_site.admin_view(dashboard_view), name="loyalty_dashboard")
        return [dashboard, *super().get_urls()]  # before "<path:object_id>/", which would match it too


if admin.site.is_registered(Program):
    admin.site.unregister(Program)
admin.site.register(Program, ProgramAdminWithDashboard)
