"""CSV downloads in admin (the streaming itself is in ``loyalty/exports.py``).

- Members: an action on the member list (the selected members, or all matching the filter
  with "select all") and an "Export CSV" button (everything the current filter and search
  show). Needs the view permission on members.
- Ledger: a page with a period (and optional programme) on the points ledger list. Needs
  the view permission on points entries.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from .. import exports
from ..forms import LedgerExportForm
from ..models import Member


class _ExportUrlMixin:
    """The ``.../export/`` URL (``admin:<app>_<model>_export``) of the admin's ``export_view``."""

    def get_export_urls(self):
        return [
            path(
                "export/",
                self.admin_site.admin_view(self.export_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_export",
            )
        ]


class MemberExportMixin(_ExportUrlMixin):
    """For ``MemberAdmin``: the ``export_csv`` action and the ``.../member/export/`` view."""

    @admin.action(description=_("Export selected members as CSV"), permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Member]):
        return exports.members_csv(queryset)

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """Every member the changelist shows with the same query string (filters, search)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))
        return exports.members_csv(changelist.queryset)


class LedgerExportMixin(_ExportUrlMixin):
    """For ``PointsEntryAdmin``: the ``.../pointsentry/export/`` page."""

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """Without a period: the form. With a valid one (GET, so the link can be bookmarked): the CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        bound = "start" in request.GET or "end" in request.GET
        form = LedgerExportForm(request.GET if bound else None, initial=LedgerExportForm.initial_period())
        if form.is_bound and form.is_valid():
            return exports.ledger_csv(
                start=form.cleaned_data["start"], end=form.cleaned_data["end"], program=form.cleaned_data["program"]
            )
        return TemplateResponse(
            request,
            "admin/loyalty/pointsentry/export.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Export the points ledger"),
                "opts": self.opts,
                "form": form,
                "columns": exports.LEDGER_HEADER,
            },
        )
