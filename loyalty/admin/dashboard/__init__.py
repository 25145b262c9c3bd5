"""The staff KPI dashboard: ``/admin/loyalty/program/dashboard/`` (URL name ``admin:loyalty_dashboard``).

A read-only admin page over :mod:`loyalty.selectors.kpis`: KPI cards compared with the previous period,
tables, and charts drawn as inline SVG (no JavaScript, no CDN: it works offline), each with a
title, a description and its data as a table. Staff need ``loyalty.view_member``.

What lives here: ``formatters`` (numbers, money, rates, periods), ``form`` (the programme and
period filter), ``cards`` (KPI cards and their comparison), ``charts`` (the SVG charts),
``tables`` (tiers, segments, campaigns) and ``view`` (the page). The URL is added by
``ProgramAdmin.get_urls`` in ``loyalty/admin/base.py``.
"""

from .cards import Card, build_cards, voice_cards
from .charts import Chart, Series, bar_chart, hbar_chart, line_chart, nice_ceiling, svg_open
from .form import DashboardForm, choose_program, resolve_period
from .formatters import count, decimal, money, percent, period_label
from .view import VIEW_PERMISSION, dashboard_view

__all__ = [
    "VIEW_PERMISSION",
    "Card",
    "Chart",
    "DashboardForm",
    "Series",
    "bar_chart",
    "build_cards",
    "choose_program",
    "count",
    "dashboard_view",
    "decimal",
    "hbar_chart",
    "line_chart",
    "money",
    "nice_ceiling",
    "percent",
    "period_label",
    "resolve_period",
    "svg_open",
    "voice_cards",
]
