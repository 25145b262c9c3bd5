"""The dashboard's charts, drawn as inline SVG (no JavaScript, no CDN: it works offline).

Each chart has a title and a description that screen readers read, and its data as a table
(:class:`Chart`). ``svg_open`` is shared with the health admin's charts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from ...nps import nps_text as _nps_text
from ...selectors import kpis
from .formatters import _number, count, decimal, money, percent


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


# The monthly charts (bars and line) share one frame: its size and margins, the grid with the
# y labels, and the month labels under the plot.
_WIDTH, _HEIGHT = 960, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 92, 12, 24, 46
_PLOT_W, _PLOT_H = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM


def _grid_line(y: float, label: str, *, base: bool) -> SafeString:
    """A horizontal grid line at ``y`` with its y-axis label; ``base``: the axis line itself."""
    return format_html(
        '<line class="ld-grid{}" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
        '<text class="ld-axis" x="{}" y="{}" text-anchor="end">{}</text>',
        " ld-grid--base" if base else "",
        _LEFT,
        _WIDTH - _RIGHT,
        _px(y),
        _px(y),
        _LEFT - 6,
        _px(y + 4),
        label,
    )


def _month_tick(month: date, i: int, every: int, x: float) -> SafeString:
    """The label of the ``i``-th month under the plot at ``x`` (every ``every``-th month is labelled)."""
    return format_html(
        '<text class="ld-axis{}" x="{}" y="{}" text-anchor="middle">{}</text>',
        " ld-axis--minor" if (i // every) % 2 else "",
        _px(x),
        _HEIGHT - 8,
        _month_label(month, i == 0),
    )


def svg_open(*, chart_id: str, title: str, description: str, width: int, height: int, css: str = "") -> str:
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
    left, top, plot_w, plot_h = _LEFT, _TOP, _PLOT_W, _PLOT_H
    if stacked:
        peak = max((sum(float(s.values[i]) for s in series) for i in range(len(months))), default=0)
    else:
        peak = max((float(v) for s in series for v in s.values), default=0)
    step = nice_ceiling(peak / 4)
    top_value = step * 4
    parts = [svg_open(chart_id=chart_id, title=title, description=description, width=_WIDTH, height=_HEIGHT)]
    # Grid lines and y labels.
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(_grid_line(y, _short(step * i), base=i == 0))
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
            parts.append(_month_tick(month, i, every, left + slot * i + slot / 2))
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(parts))


def hbar_chart(*, chart_id: str, title: str, description: str, rows: list[tuple[str, int, str]]) -> SafeString:
    """Horizontal bars, one per ``(label, value, css class)``, the value written at the bar's end."""
    width, label_w, row_h, top = 480, 150, 26, 4
    height = top * 2 + row_h * len(rows)
    peak = max((value for _label, value, _css in rows), default=0) or 1
    bar_room = width - label_w - 48
    parts = [
        svg_open(
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
    left, top, plot_w, plot_h = _LEFT, _TOP, _PLOT_W, _PLOT_H

    def y_of(value: float) -> float:
        return top + plot_h - plot_h * (float(value) - low) / (high - low)

    parts = [svg_open(chart_id=chart_id, title=title, description=description, width=_WIDTH, height=_HEIGHT)]
    for i in range(5):
        value = low + (high - low) * i / 4
        y = y_of(value)
        parts.append(_grid_line(y, fmt(value), base=value == 0 or (i == 0 and low > 0)))
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
            marks.append(_month_tick(month, i, every, x))
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
