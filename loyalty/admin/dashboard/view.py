"""The dashboard page: reads the filter, asks :mod:`loyalty.selectors.kpis` for the figures, lays out cards, charts
and tables. ``ProgramAdmin.get_urls`` serves it at ``admin:loyalty_dashboard``."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from ...models import Program, Segment
from ...selectors import kpis
from .cards import build_cards
from .charts import nps_chart, points_chart, revenue_chart, segment_chart
from .form import DashboardForm, choose_program, error_messages, resolve_period
from .formatters import count, period_label
from .tables import campaign_rows, segment_rows, tier_rows

VIEW_PERMISSION = "loyalty.view_member"


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
