"""The member admin: the member list and change page with its history, and the staff
actions on a member (adjust points, issue a reward, resend a message, erase)."""

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import flatten_fieldsets, quote, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import services
from ..exceptions import LoyaltyError
from ..forms import AdjustPointsForm, ConfirmForm, IssueRewardForm
from ..models import (
    Member,
    Message,
    OutboundEmail,
    PointsEntry,
    Purchase,
    Redemption,
    SegmentChange,
    SurveyResponse,
    TierChange,
)
from ..services.privacy import member_is_erased
from .base import _percent, adjust_limit_for, is_loyalty_manager
from .exports import MemberExportMixin
from .records import PointsEntryInline

#: How much of a member's history their change page shows (each list is one bounded query).
PAGE_PURCHASES = 20
PAGE_MESSAGES = 10
PAGE_HISTORY = 10
PAGE_SURVEY_ANSWERS = 10
RESENDABLE = (Message.Status.SENT, Message.Status.FAILED)


def _adjustment_key(token: str, member: Member) -> str:
    # The form's hidden token makes a resubmitted form (double click, browser back) a no-op.
    return f"adjust:{token}:{member.pk}"


def _issue_key(token: str) -> str:
    return f"staff-issue:{token}"


def _ledger_url(member_id) -> str:
    return f"{reverse('admin:loyalty_pointsentry_changelist')}?{urlencode({'member__id__exact': member_id})}"


@admin.register(Member)
class MemberAdmin(MemberExportMixin, admin.ModelAdmin):
    list_display = [
        "customer",
        "email",
        "program",
        "tier",
        "balance",
        "balance_value",
        "segment",
        "joined_at",
        "marketing_consent",
    ]
    list_filter = [
        "program",
        "tier",
        "health__segment",
        "health__at_risk",
        "marketing_consent",
        ("joined_at", admin.DateFieldListFilter),
    ]
    search_fields = ["user__email", "user__username", "user__first_name", "user__last_name", "referral_code"]
    list_select_related = ["user", "program", "tier", "health"]
    date_hierarchy = "joined_at"
    autocomplete_fields = ["user"]
    readonly_fields = [
        "balance",
        "balance_value",
        "pending_points",
        "lifetime_points",
        "tier",
        "tier_since",
        "orders_count",
        "last_purchase_at",
        "referral_code",
        "referred_by",
        "health_summary",
        "ledger_link",
    ]
    fieldsets = [
        (None, {"fields": ["program", "user", "joined_at", "birth_date"]}),
        (_("Points"), {"fields": ["balance", "balance_value", "pending_points", "lifetime_points", "ledger_link"]}),
        (_("Tier and activity"), {"fields": ["tier", "tier_since", "orders_count", "last_purchase_at"]}),
        (_("Health"), {"fields": ["health_summary"]}),
        (_("Referrals"), {"fields": ["referral_code", "referred_by"]}),
        (_("Consent"), {"fields": ["marketing_consent", "consent_changed_at"]}),
    ]
    inlines = [PointsEntryInline]
    actions = ["adjust_points", "export_csv"]

    def get_queryset(self, request):
        # The change page shows the balance's value, which needs the programme.
        return super().get_queryset(request).select_related("user", "program", "tier", "health")

    @admin.display(description=_("segment"), ordering="health__segment")
    def segment(self, obj: Member) -> str:
        health = getattr(obj, "health", None)
        if health is None:
            return "–"
        label = health.get_segment_display()
        return format_html("<strong>{}</strong>", label) if health.at_risk else label

    @admin.display(description=_("customer health"))
    def health_summary(self, obj: Member) -> str:
        health = getattr(obj, "health", None) if obj and obj.pk else None
        if health is None:
            return _("Not scored yet (the nightly health refresh scores every member).")
        rows = [
            (
                _("Segment"),
                f"{health.get_segment_display()} ({_('since')} {timezone.localtime(health.segment_since):%Y-%m-%d})",
            ),
            (_("At risk"), health.get_risk_reason_display() if health.at_risk else _("No")),
            (_("Orders / repeat purchase days"), f"{health.orders} / {health.frequency}"),
            (_("Days since last order"), "–" if health.recency_days is None else health.recency_days),
            (_("Typical gap (days)"), "–" if health.typical_gap_days is None else f"{health.typical_gap_days:.0f}"),
            (_("Average order value"), f"{health.monetary} {obj.program.currency}"),
            (_("RFM"), "–" if health.r_score is None else f"{health.r_score}-{health.f_score}-{health.m_score}"),
            (_("P(alive)"), _percent(health.p_alive)),
            (_("P(no purchase in horizon)"), _percent(health.p_lapse)),
            (
                _("Expected purchases (90 days)"),
                "–" if health.expected_purchases is None else f"{health.expected_purchases:.2f}",
            ),
            (_("Expected next order"), health.expected_next_order_on or "–"),
            (_("Spent so far"), f"{health.total_spent} {obj.program.currency}"),
            (
                _("Recent detractor answer"),
                "–" if health.detractor_at is None else f"{timezone.localtime(health.detractor_at):%Y-%m-%d}",
            ),
            (
                _("Predicted value (1 year)"),
                "–" if health.predicted_clv is None else f"{health.predicted_clv} {obj.program.currency}",
            ),
            (_("Scored by"), f"{health.scored_by}, {timezone.localtime(health.computed_at):%Y-%m-%d %H:%M}"),
        ]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is None:
            return fields
        fields += ["program", "user"]
        if not is_loyalty_manager(request.user):
            # Support agents act on a member through the page's buttons, never by editing it.
            fields += [f for f in flatten_fieldsets(self.get_fieldsets(request, obj)) if f not in fields]
        return fields

    @admin.display(description=_("ledger"))
    def ledger_link(self, obj: Member) -> str:
        if obj is None or obj.pk is None:
            return "–"
        return format_html('<a href="{}">{}</a>', _ledger_url(obj.pk), _("Full ledger, newest first"))

    def has_erase_permission(self, request: HttpRequest) -> bool:
        """Erasing personal data needs the permission to delete members (superusers have it)."""
        return request.user.has_perm(f"{self.opts.app_label}.delete_{self.opts.model_name}")

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), **self._history_context(request, object_id)}
        )

    def _history_context(self, request: HttpRequest, object_id: str) -> dict:
        """The member's latest purchases, messages, tier and segment changes, survey answers: one query each."""
        try:
            member_id = self.opts.pk.to_python(unquote(object_id))
        except ValidationError:
            return {}
        return {
            "member_purchases": list(
                Purchase.objects.filter(member_id=member_id).order_by("-occurred_at", "-id")[:PAGE_PURCHASES]
            ),
            "member_messages": list(
                Message.objects.filter(member_id=member_id)
                .select_related("campaign")
                .order_by("-created_at", "-id")[:PAGE_MESSAGES]
            ),
            "member_emails": list(
                OutboundEmail.objects.filter(member_id=member_id).order_by("-created_at", "-id")[:PAGE_MESSAGES]
            ),
            "tier_history": list(
                TierChange.objects.filter(member_id=member_id)
                .select_related("from_tier", "to_tier")
                .order_by("-created_at", "-id")[:PAGE_HISTORY]
            ),
            "segment_history": list(
                SegmentChange.objects.filter(member_id=member_id).order_by("-changed_at", "-id")[:PAGE_HISTORY]
            ),
            "survey_answers": list(
                SurveyResponse.objects.filter(member_id=member_id)
                .select_related("purchase", "survey")
                .order_by("-submitted_at", "-id")[:PAGE_SURVEY_ANSWERS]
            ),
            "page_survey_answers": PAGE_SURVEY_ANSWERS,
            "resendable_statuses": [str(s) for s in RESENDABLE],
            "has_erase_permission": self.has_erase_permission(request),
            "ledger_url": _ledger_url(member_id),
            "page_purchases": PAGE_PURCHASES,
            "page_messages": PAGE_MESSAGES,
        }

    @admin.display(description=_("email"), ordering="user__email")
    def email(self, obj: Member) -> str:
        return obj.user.email

    @admin.display(description=_("customer"), ordering="user__last_name")
    def customer(self, obj: Member) -> str:
        return obj.user.get_full_name() or obj.user.get_username()

    @admin.display(description=_("balance value"))
    def balance_value(self, obj: Member) -> str:
        if obj.pk is None or obj.program_id is None:
            return "–"
        return f"{obj.balance_value} {obj.program.currency}"

    # --- adjusting points -------------------------------------------------------------------

    def get_urls(self):
        def url(route: str, view, name: str):
            return path(
                route, self.admin_site.admin_view(view), name=f"{self.opts.app_label}_{self.opts.model_name}_{name}"
            )

        return [
            url("<path:object_id>/adjust/", self.adjust_view, "adjust"),
            url("<path:object_id>/issue-reward/", self.issue_reward_view, "issue_reward"),
            url("<path:object_id>/messages/<int:message_id>/resend/", self.resend_message_view, "resend_message"),
            url("<path:object_id>/erase/", self.erase_view, "erase"),
            *self.get_export_urls(),
            *super().get_urls(),
        ]

    def _change_url(self, member: Member) -> str:
        return reverse("admin:loyalty_member_change", args=[quote(member.pk)], current_app=self.admin_site.name)

    def _action_page(self, request: HttpRequest, template: str, member: Member, title: str, **context):
        return TemplateResponse(
            request,
            f"admin/loyalty/member/{template}",
            {
                **self.admin_site.each_context(request),
                "title": title,
                "opts": self.opts,
                "original": member,
                "change_url": self._change_url(member),
                **context,
            },
        )

    def _adjust(self, request: HttpRequest, member: Member, form: AdjustPointsForm) -> PointsEntry:
        return services.points_adjust(
            member=member,
            points=form.cleaned_data["points"],
            reason=form.cleaned_data["reason"],
            by=request.user,
            idempotency_key=_adjustment_key(form.cleaned_data["token"], member),
        )

    def adjust_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Adjust one member's points from their change page (needs the change permission)."""
        member = self._member_or_redirect(request, object_id)
        if isinstance(member, HttpResponse):
            return member
        if not self.has_change_permission(request, member):
            raise PermissionDenied
        change_url = self._change_url(member)
        form = AdjustPointsForm(
            request.POST if request.method == "POST" else None, limit=adjust_limit_for(request.user)
        )
        if form.is_bound and form.is_valid():
            key = _adjustment_key(form.cleaned_data["token"], member)
            if PointsEntry.objects.filter(program_id=member.program_id, idempotency_key=key).exists():
                self.message_user(
                    request, _("This adjustment had been applied already (the form was sent twice)."), messages.WARNING
                )
                return HttpResponseRedirect(change_url)
            try:
                entry = self._adjust(request, member, form)
            except LoyaltyError as exc:
                form.add_error(None, exc.message)
            else:
                member.refresh_from_db(fields=["balance", "lifetime_points"])
                self.message_user(
                    request,
                    _("%(points)+d points for %(member)s (%(reason)s). The balance is now %(balance)d points.")
                    % {
                        "points": entry.points,
                        "member": member,
                        "reason": entry.description,
                        "balance": member.balance,
                    },
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(change_url)
        title = _("Adjust points of %(member)s") % {"member": member}
        return self._action_page(request, "adjust_points.html", member, title, form=form)

    @admin.action(description=_("Adjust points of selected members…"), permissions=["change"])
    def adjust_points(self, request: HttpRequest, queryset: QuerySet[Member]):
        form = AdjustPointsForm(request.POST if "apply" in request.POST else None, limit=adjust_limit_for(request.user))
        if form.is_bound and form.is_valid():
            members = list(queryset.select_related("user", "program"))
            keys = {_adjustment_key(form.cleaned_data["token"], m): m for m in members}
            already = set(
                PointsEntry.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", flat=True)
            )
            done, refused = 0, []
            for key, member in keys.items():
                if key in already:
                    continue
                try:
                    self._adjust(request, member, form)
                    done += 1
                except LoyaltyError as exc:
                    refused.append(f"{member}: {exc.message}")
            if done:
                self.message_user(
                    request,
                    ngettext("Adjusted the points of %d member.", "Adjusted the points of %d members.", done) % done,
                    messages.SUCCESS,
                )
            if already:
                n = len(already)
                self.message_user(
                    request,
                    ngettext(
                        "%d adjustment had been applied already (the form was sent twice); not repeated.",
                        "%d adjustments had been applied already (the form was sent twice); not repeated.",
                        n,
                    )
                    % n,
                    messages.WARNING,
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

    # --- issuing a reward, resending a message, erasing personal data ------------------------

    def _member_or_redirect(self, request: HttpRequest, object_id: str) -> Member | HttpResponse:
        member = self.get_object(request, unquote(object_id))
        if member is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return member

    def issue_reward_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Give the member one of the programme's rewards free of points (needs the change permission)."""
        member = self._member_or_redirect(request, object_id)
        if isinstance(member, HttpResponse):
            return member
        if not self.has_change_permission(request, member):
            raise PermissionDenied
        form = IssueRewardForm(
            request.POST if request.method == "POST" else None, member=member, limit=adjust_limit_for(request.user)
        )
        if form.is_bound and form.is_valid():
            key, reward = _issue_key(form.cleaned_data["token"]), form.cleaned_data["reward"]
            if Redemption.objects.filter(program_id=member.program_id, idempotency_key=key).exists():
                self.message_user(
                    request, _("This reward had been issued already (the form was sent twice)."), messages.WARNING
                )
                return HttpResponseRedirect(self._change_url(member))
            try:
                redemption = services.reward_redeem(
                    member=member, reward=reward, free=True, idempotency_key=key, by=request.user
                )
            except LoyaltyError as exc:
                form.add_error(None, exc.message)
            else:
                note = form.cleaned_data["note"].strip()
                self.log_change(
                    request,
                    member,
                    gettext("Issued the reward “%(reward)s” free of points (code %(code)s).")
                    % {"reward": reward.name, "code": redemption.code}
                    + (f" {gettext('Note')}: {note}" if note else ""),
                )
                self.message_user(
                    request,
                    gettext("Issued “%(reward)s” to %(member)s free of points: code %(code)s.")
                    % {"reward": reward.name, "member": member, "code": redemption.code},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self._change_url(member))
        title = gettext("Issue a reward to %(member)s") % {"member": member}
        return self._action_page(request, "issue_reward.html", member, title, form=form)

    def resend_message_view(self, request: HttpRequest, object_id: str, message_id: int) -> HttpResponse:
        """Queue a new email of the same campaign to the member (needs the change permission)."""
        member = self._member_or_redirect(request, object_id)
        if isinstance(member, HttpResponse):
            return member
        if not self.has_change_permission(request, member):
            raise PermissionDenied
        message = Message.objects.select_related("campaign").filter(pk=message_id, member=member).first()
        if message is None:
            raise Http404(gettext("This member has no such message."))
        form = ConfirmForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                resent = services.message_resend(message=message, by=request.user, token=form.cleaned_data["token"])
            except LoyaltyError as exc:
                form.add_error(None, exc.message)
            else:
                self.log_change(
                    request,
                    member,
                    gettext("Resent message %(original)s of campaign “%(campaign)s” as message %(new)s.")
                    % {"original": message.pk, "campaign": message.campaign, "new": resent.pk},
                )
                self.message_user(
                    request,
                    gettext("The email of campaign “%(campaign)s” is queued to be sent to %(member)s again.")
                    % {"campaign": message.campaign, "member": member},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self._change_url(member))
        title = gettext("Resend an email to %(member)s") % {"member": member}
        return self._action_page(request, "resend_message.html", member, title, form=form, message=message)

    def erase_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirm, then erase the customer's personal data (needs ``loyalty.delete_member``)."""
        member = self._member_or_redirect(request, object_id)
        if isinstance(member, HttpResponse):
            return member
        if not self.has_erase_permission(request):
            raise PermissionDenied
        already, error = member_is_erased(member), ""
        if request.method == "POST":
            try:
                member = services.member_erase(member=member, by=request.user)
            except LoyaltyError as exc:
                error = exc.message
            else:
                if already:
                    self.message_user(request, gettext("This customer's data had been erased already."), messages.INFO)
                else:
                    self.log_change(request, member, gettext("Erased the customer's personal data (GDPR)."))
                    self.message_user(
                        request,
                        gettext(
                            "The customer's personal data is erased. Their points, purchases and rewards are kept, "
                            "anonymously, as %(member)s."
                        )
                        % {"member": member},
                        messages.SUCCESS,
                    )
                return HttpResponseRedirect(self._change_url(member))
        title = gettext("Erase the personal data of %(member)s") % {"member": member}
        return self._action_page(request, "erase.html", member, title, already=already, error=error)
