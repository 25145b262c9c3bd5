"""Read-only record keeping: the points ledger (its admin, and the latest entries on a member's
page), purchases and the order-event inbox."""

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from .. import services
from ..models import (
    OrderEvent,
    PointsEntry,
    Purchase,
)
from .base import MEMBER_SEARCH, ReadOnlyMixin, _member_link
from .exports import LedgerExportMixin


class LatestEntriesFormSet(BaseInlineFormSet):
    """The member's newest entries only: a long ledger never makes the member page slow."""

    limit = 50

    def get_queryset(self):
        if not hasattr(self, "_latest"):
            self._latest = super().get_queryset()[: self.limit]
        return self._latest


class PointsEntryInline(ReadOnlyMixin, admin.TabularInline):
    model = PointsEntry
    fk_name = "member"
    formset = LatestEntriesFormSet
    fields = ["created_at", "kind", "points", "remaining", "expires_at", "reference", "description", "created_by"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]
    extra = 0
    max_num = 0
    show_change_link = False
    verbose_name_plural = _("Latest points entries (the full ledger is under Points ledger)")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")


@admin.register(PointsEntry)
class PointsEntryAdmin(LedgerExportMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["created_at", "member_link", "kind", "points", "remaining", "expires_at", "details", "created_by"]
    list_filter = ["kind", "program", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["reference", "idempotency_key", "member__user__username", *MEMBER_SEARCH]
    list_select_related = ["member__user", "created_by"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_urls(self):
        return [*self.get_export_urls(), *super().get_urls()]

    @admin.display(description=_("member"), ordering="member__user__username")
    def member_link(self, obj: PointsEntry) -> str:
        return _member_link(obj.member)

    @admin.display(description=_("reference / reason"))
    def details(self, obj: PointsEntry) -> str:
        return " · ".join(part for part in (obj.reference, obj.description) if part) or "–"


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "order_reference",
        "member_link",
        "email",
        "amount",
        "refunded_amount",
        "currency",
        "status",
        "points_earned",
        "points_reversed",
        "occurred_at",
    ]
    list_filter = ["status", "program", ("member", admin.EmptyFieldListFilter)]
    search_fields = ["order_reference", "email", *MEMBER_SEARCH]
    list_select_related = ["member__user"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False

    @admin.display(description=_("member"), ordering="member__user__username")
    def member_link(self, obj: Purchase) -> str:
        return _member_link(obj.member)


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["event_key", "kind", "order_reference", "status", "attempts", "received_at", "error_summary"]
    list_filter = ["status", "kind"]
    search_fields = ["event_key", "order_reference"]
    date_hierarchy = "received_at"
    fields = [
        "event_key",
        "kind",
        "order_reference",
        "status",
        "attempts",
        "received_at",
        "processed_at",
        "last_error_block",
        "payload_block",
    ]
    readonly_fields = fields
    actions = ["retry"]
    show_full_result_count = False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # Reprocessing is a change of state, never an edit: the change form stays read-only.
        return request.user.has_perm("loyalty.change_orderevent")

    @admin.display(description=_("error"))
    def error_summary(self, obj: OrderEvent) -> str:
        return Truncator(obj.last_error).chars(80)

    @admin.display(description=_("last error"))
    def last_error_block(self, obj: OrderEvent) -> str:
        if not obj.last_error:
            return "–"
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', obj.last_error)

    @admin.display(description=_("payload"))
    def payload_block(self, obj: OrderEvent) -> str:
        text = json.dumps(obj.payload, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre style="margin: 0">{}</pre>', text)

    @admin.action(description=_("Retry selected events now"), permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[OrderEvent]):
        outcomes: dict[str, int] = {}
        for event in queryset.exclude(status=OrderEvent.Status.PROCESSED):
            status = services.event_retry(event=event).status
            outcomes[status] = outcomes.get(status, 0) + 1
        if not outcomes:
            self.message_user(request, _("The selected events were all processed already."), messages.INFO)
            return
        labels = dict(OrderEvent.Status.choices)
        summary = ", ".join(f"{labels[s]}: {n}" for s, n in sorted(outcomes.items()))
        level = messages.SUCCESS if set(outcomes) <= {OrderEvent.Status.PROCESSED} else messages.WARNING
        self.message_user(request, _("Retried. %(summary)s") % {"summary": summary}, level)
