from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import services
from .exceptions import LoyaltyError
from .forms import AdjustPointsForm
from .models import Member, OrderEvent, PointsEntry, Program, Purchase


class ReadOnlyMixin:
    """Records kept by services: staff read them, nobody edits or deletes them here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "currency", "points_per_unit", "point_value", "points_lifetime_days", "is_active"]
    list_filter = ["is_active", "currency"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["name", "slug", "currency", "is_active"]}),
        (_("Earning and value"), {"fields": ["points_per_unit", "point_value", "points_lifetime_days"]}),
        (_("Policies"), {"fields": ["negative_balance_policy", "enroll_on_signup"]}),
    ]


class PointsEntryInline(ReadOnlyMixin, admin.TabularInline):
    model = PointsEntry
    fk_name = "member"
    fields = ["created_at", "kind", "points", "remaining", "expires_at", "reference", "description", "created_by"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]
    extra = 0
    max_num = 0
    show_change_link = False
    verbose_name_plural = _("Latest points entries (the full ledger is under Points ledger)")

    def get_queryset(self, request):
        # Bounded: the inline shows the newest 50 rows, whatever the ledger's length.
        qs = super().get_queryset(request).select_related("created_by")
        ids = list(qs.values_list("id", flat=True)[:50])
        return qs.filter(id__in=ids)


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = ["user", "program", "balance", "lifetime_points", "joined_at", "marketing_consent"]
    list_filter = ["program", "marketing_consent", ("joined_at", admin.DateFieldListFilter)]
    search_fields = ["user__email", "user__username", "user__first_name", "user__last_name"]
    list_select_related = ["user", "program"]
    date_hierarchy = "joined_at"
    autocomplete_fields = ["user"]
    readonly_fields = ["balance", "lifetime_points"]
    fields = ["program", "user", "balance", "lifetime_points", "joined_at", "marketing_consent", "consent_changed_at"]
    inlines = [PointsEntryInline]
    actions = ["adjust_points"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields + ["program", "user"] if obj else fields

    @admin.action(description=_("Adjust points of selected members…"), permissions=["change"])
    def adjust_points(self, request: HttpRequest, queryset: QuerySet[Member]):
        form = AdjustPointsForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            done, refused = 0, []
            for member in queryset.select_related("user", "program"):
                try:
                    services.adjust_points(
                        member=member,
                        points=form.cleaned_data["points"],
                        reason=form.cleaned_data["reason"],
                        by=request.user,
                        idempotency_key=f"adjust:{form.cleaned_data['token']}:{member.pk}",
                    )
                    done += 1
                except LoyaltyError as exc:
                    refused.append(f"{member}: {exc.message}")
            if done:
                self.message_user(
                    request,
                    ngettext("Adjusted the points of %d member.", "Adjusted the points of %d members.", done) % done,
                    messages.SUCCESS,
                )
            for message in refused:
                self.message_user(request, message, messages.ERROR)
            return None
        return TemplateResponse(
            request,
            "admin/loyalty/adjust_points.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Adjust points"),
                "opts": self.model._meta,
                "form": form,
                "members": queryset.select_related("user", "program"),
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
                "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
            },
        )


@admin.register(PointsEntry)
class PointsEntryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["created_at", "member", "kind", "points", "remaining", "expires_at", "reference", "created_by"]
    list_filter = ["kind", "program", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["reference", "idempotency_key", "member__user__email", "member__user__username"]
    list_select_related = ["member__user", "created_by"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "order_reference",
        "member",
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
    search_fields = ["order_reference", "email", "member__user__email"]
    list_select_related = ["member__user"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["event_key", "kind", "order_reference", "status", "attempts", "received_at", "processed_at"]
    list_filter = ["status", "kind"]
    search_fields = ["event_key", "order_reference"]
    date_hierarchy = "received_at"
    readonly_fields = [
        "event_key",
        "kind",
        "order_reference",
        "status",
        "attempts",
        "received_at",
        "processed_at",
        "last_error",
        "payload",
    ]
    actions = ["retry"]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        # Viewing needs "view"; the retry action needs "change" (it reprocesses, never edits).
        return request.user.has_perm("loyalty.change_orderevent")

    @admin.action(description=_("Retry selected events now"), permissions=["change"])
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
