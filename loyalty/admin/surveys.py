"""Admin for post-purchase surveys: configuring them, and reading what customers answered.

Responses are the customers' own words: everyone reads them, nobody edits or deletes them
here (superusers included). Invitations are the survey service's record of who was asked.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from .. import exports
from ..models import EarningRule, Survey, SurveyInvitation, SurveyResponse
from ..nps import DETRACTOR, PASSIVE, PROMOTER, nps_band_q, nps_score, nps_text
from .base import MEMBER_SEARCH, ReadOnlyMixin, _member_link, _percent

Status = SurveyInvitation.Status


def _rules_url(program_id: int | None = None) -> str:
    query = {"kind__exact": EarningRule.Kind.SURVEY_ANSWERED.value}
    if program_id:
        query["program__id__exact"] = program_id
    return reverse("admin:loyalty_earningrule_changelist") + "?" + urlencode(query)


@admin.register(Survey)
class SurveyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "program",
        "is_active",
        "questions",
        "delay_days",
        "invitations_sent",
        "responses_count",
        "response_rate",
        "nps",
    ]
    list_filter = ["is_active", "program"]
    list_select_related = ["program"]
    search_fields = ["name"]
    readonly_fields = ["points_note"]
    fieldsets = [
        (None, {"fields": ["program", "name", "is_active", "language"]}),
        (
            _("Questions"),
            {
                "fields": ["ask_nps", "nps_question", "ask_csat", "csat_question", "ask_comment", "comment_question"],
                "description": _(
                    "At least one question. Empty wording: the standard question in the member's language."
                ),
            },
        ),
        (
            _("When it is sent"),
            {
                "fields": ["delay_days", "window_days", "min_days_between"],
                "description": _("Only to members who agreed to marketing emails; one survey per order at most."),
            },
        ),
        (_("Points for an answer"), {"fields": ["points_note"]}),
        (
            _("Detractor alerts"),
            {
                "fields": ["alert_email", "alert_min_spend"],
                "description": _(
                    "A high-value customer who answers NPS 0-6 or CSAT 1-2 is reported once: to this address "
                    "and through the member_detractor signal."
                ),
            },
        ),
    ]

    def get_queryset(self, request):
        sent = Q(invitations__status=Status.SENT)
        return (
            super()
            .get_queryset(request)
            .annotate(
                sent_count=Count("invitations", filter=sent, distinct=True),
                response_count=Count("responses", distinct=True),
                promoter_count=Count("responses", filter=nps_band_q(PROMOTER, "responses__nps"), distinct=True),
                detractor_count=Count("responses", filter=nps_band_q(DETRACTOR, "responses__nps"), distinct=True),
                nps_count=Count("responses", filter=Q(responses__nps__isnull=False), distinct=True),
            )
        )

    @admin.display(description=_("questions"))
    def questions(self, obj: Survey) -> str:
        asked = [
            name for name, on in (("NPS", obj.ask_nps), ("CSAT", obj.ask_csat), (_("comment"), obj.ask_comment)) if on
        ]
        return ", ".join(str(name) for name in asked)

    @admin.display(description=_("invitations sent"), ordering="sent_count")
    def invitations_sent(self, obj: Survey) -> int:
        return obj.sent_count

    @admin.display(description=_("responses"), ordering="response_count")
    def responses_count(self, obj: Survey) -> int:
        return obj.response_count

    @admin.display(description=_("response rate"))
    def response_rate(self, obj: Survey) -> str:
        return _percent(obj.response_count / obj.sent_count if obj.sent_count else None)

    @admin.display(description=_("NPS"))
    def nps(self, obj: Survey) -> str:
        return nps_text(nps_score(promoters=obj.promoter_count, detractors=obj.detractor_count, answers=obj.nps_count))

    @admin.display(description=_("points"))
    def points_note(self, obj: Survey | None) -> str:
        program_id = obj.program_id if obj is not None and obj.pk else None
        return format_html(
            '{} <a href="{}">{}</a>',
            _(
                'The points for an answer (once per order) come from the programme\'s "Survey answered" '
                "earning rule: switch it on or off and set its points there."
            ),
            _rules_url(program_id),
            _("Survey answered rules"),
        )

    def _warn_without_rule(self, request: HttpRequest, survey: Survey) -> None:
        has_rule = EarningRule.objects.filter(
            program_id=survey.program_id, kind=EarningRule.Kind.SURVEY_ANSWERED, is_active=True
        ).exists()
        if not has_rule:
            self.message_user(
                request,
                _(
                    '%(program)s has no active "Survey answered" earning rule: answers to this survey earn no '
                    "points until one is added."
                )
                % {"program": survey.program},
                messages.WARNING,
            )

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        if request.method == "GET":
            survey = self.get_object(request, object_id)
            if survey is not None:
                self._warn_without_rule(request, survey)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self._warn_without_rule(request, obj)


class ScoreBandFilter(admin.SimpleListFilter):
    title = _("NPS band")
    parameter_name = "band"

    def lookups(self, request, model_admin):
        return [
            ("promoter", _("Promoters (9-10)")),
            ("passive", _("Passives (7-8)")),
            ("detractor", _("Detractors (0-6)")),
            ("none", _("No NPS answer")),
        ]

    def queryset(self, request, queryset):
        bands = {
            PROMOTER: nps_band_q(PROMOTER),
            PASSIVE: nps_band_q(PASSIVE),
            DETRACTOR: nps_band_q(DETRACTOR),
            "none": Q(nps__isnull=True),
        }
        return queryset.filter(bands[self.value()]) if self.value() in bands else queryset


class CategoryFilter(admin.SimpleListFilter):
    """The product category of the order, as the adapter reported it (one query for the choices)."""

    title = _("product category")
    parameter_name = "category"

    def lookups(self, request, model_admin):
        categories = (
            SurveyResponse.objects.exclude(purchase__category="")
            .order_by("purchase__category")
            .values_list("purchase__category", flat=True)
            .distinct()[:200]
        )
        return [(category, category) for category in categories]

    def queryset(self, request, queryset):
        return queryset.filter(purchase__category=self.value()) if self.value() else queryset


@admin.register(SurveyResponse)
class SurveyResponseAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """What customers answered: read-only for everyone, exported as CSV."""

    list_display = [
        "submitted_at",
        "member_link",
        "order",
        "nps",
        "csat",
        "is_detractor",
        "comment_excerpt",
        "category",
    ]
    list_filter = [ScoreBandFilter, "csat", "is_detractor", "survey", "program", CategoryFilter]
    search_fields = ["comment", "purchase__order_reference", *MEMBER_SEARCH]
    list_select_related = ["member__user", "purchase"]
    date_hierarchy = "submitted_at"
    show_full_result_count = False
    actions = ["export_csv"]
    fields = [
        "survey",
        "program",
        "member_link",
        "order",
        "category",
        "nps",
        "csat",
        "comment",
        "is_detractor",
        "language",
        "submitted_at",
        "updated_at",
        "alerted_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member__user", "purchase", "survey", "program")

    @admin.display(description=_("member"), ordering="member__user__email")
    def member_link(self, obj: SurveyResponse) -> str:
        return _member_link(obj.member)

    @admin.display(description=_("order"), ordering="purchase__order_reference")
    def order(self, obj: SurveyResponse) -> str:
        url = reverse("admin:loyalty_purchase_change", args=[obj.purchase_id])
        return format_html('<a href="{}">{}</a>', url, obj.purchase.order_reference)

    @admin.display(description=_("category"), ordering="purchase__category")
    def category(self, obj: SurveyResponse) -> str:
        return obj.purchase.category or "–"

    @admin.display(description=_("comment"))
    def comment_excerpt(self, obj: SurveyResponse) -> str:
        return Truncator(obj.comment).chars(80) or "–"

    @admin.action(description=_("Export selected responses as CSV"), permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[SurveyResponse]):
        return exports.responses_csv(queryset)


@admin.register(SurveyInvitation)
class SurveyInvitationAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Who was asked about which order, and what became of the email."""

    list_display = [
        "created_at",
        "survey",
        "member_link",
        "order",
        "status",
        "to_email",
        "attempts",
        "sent_at",
        "opened_at",
    ]
    list_filter = ["status", "survey", "program"]
    search_fields = ["to_email", "purchase__order_reference", *MEMBER_SEARCH]
    list_select_related = ["survey", "member__user", "purchase"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description=_("member"), ordering="member__user__email")
    def member_link(self, obj: SurveyInvitation) -> str:
        return _member_link(obj.member)

    @admin.display(description=_("order"), ordering="purchase__order_reference")
    def order(self, obj: SurveyInvitation) -> str:
        return obj.purchase.order_reference
