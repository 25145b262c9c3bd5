"""The email outbox in admin: every email loyalty queued, its state, a preview, retry and cancel."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..exceptions import LoyaltyError
from ..models import OutboundEmail
from ..services.outbox import email_preview, emails_cancel, emails_retry
from .base import ReadOnlyMixin, _member_link


@admin.register(OutboundEmail)
class OutboundEmailAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Kept by the outbox (services.outbox); staff read it, preview, send again or cancel."""

    list_display = ["created_at", "kind", "status", "to_email", "attempts", "error_summary", "sent_at", "member_link"]
    list_filter = ["status", "kind"]
    search_fields = ["key", "to_email", "member__user__email", "subject"]
    list_select_related = ["member__user"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["retry", "cancel"]
    fields = [
        "key",
        "kind",
        "member_link",
        "to_email",
        "subject",
        "status",
        "attempts",
        "created_at",
        "due_at",
        "lease_until",
        "sent_at",
        "last_error_block",
        "preview_link",
    ]
    readonly_fields = fields

    def has_manage_permission(self, request: HttpRequest) -> bool:
        # Sending again or cancelling changes state, never an edit: the change form stays read-only.
        return request.user.has_perm("loyalty.change_outboundemail")

    @admin.display(description=_("member"), ordering="member__user__email")
    def member_link(self, obj: OutboundEmail) -> str:
        return _member_link(obj.member) if obj.member_id else "–"

    @admin.display(description=_("error"))
    def error_summary(self, obj: OutboundEmail) -> str:
        return Truncator(obj.last_error).chars(80)

    @admin.display(description=_("last error"))
    def last_error_block(self, obj: OutboundEmail) -> str:
        if not obj.last_error:
            return "–"
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', obj.last_error)

    @admin.display(description=_("preview"))
    def preview_link(self, obj: OutboundEmail) -> str:
        url = reverse("admin:loyalty_outboundemail_preview", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Show the email as it would be sent now"))

    def get_urls(self):
        preview = self.admin_site.admin_view(self.preview_view)
        return [path("<int:email_id>/preview/", preview, name="loyalty_outboundemail_preview"), *super().get_urls()]

    def preview_view(self, request: HttpRequest, email_id: int) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        email = get_object_or_404(OutboundEmail, pk=email_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": email,
            "title": _("Preview: %(kind)s") % {"kind": email.kind},
        }
        try:
            context["preview"] = email_preview(email=email)
        except LoyaltyError as exc:
            context["error"] = exc.message
        return TemplateResponse(request, "admin/loyalty/outboundemail/preview.html", context)

    @admin.action(description=_("Send the selected emails again"), permissions=["manage"])
    def retry(self, request: HttpRequest, queryset: QuerySet[OutboundEmail]):
        queued = emails_retry(ids=list(queryset.values_list("pk", flat=True)))
        if not queued:
            self.message_user(
                request, _("Only failed, expired, skipped or cancelled emails can be sent again."), messages.INFO
            )
            return
        self.message_user(
            request,
            ngettext("%(n)d email is queued again.", "%(n)d emails are queued again.", queued) % {"n": queued},
            messages.SUCCESS,
        )

    @admin.action(description=_("Cancel the selected queued emails"), permissions=["manage"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[OutboundEmail]):
        cancelled = emails_cancel(ids=list(queryset.values_list("pk", flat=True)), by=request.user)
        if not cancelled:
            self.message_user(request, _("Only queued emails can be cancelled."), messages.INFO)
            return
        self.message_user(
            request,
            ngettext("%(n)d email is cancelled.", "%(n)d emails are cancelled.", cancelled) % {"n": cancelled},
            messages.SUCCESS,
        )
