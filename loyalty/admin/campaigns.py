"""Admin for re-engagement campaigns and their messages (registered on import from loyalty/admin/__init__.py)."""

from __future__ import annotations

from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.template import Template, TemplateSyntaxError
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..models import Campaign, Message, Segment
from ..selectors import campaign_report
from ..services.campaigns import campaign_run, campaign_schedule_name
from .base import ReadOnlyMixin, _member_link

TEMPLATE_FIELDS = ("subject", "text_template", "html_template")


def _language_choices() -> list[tuple[str, str]]:
    return [("", gettext("Site default")), *settings.LANGUAGES]


class CampaignForm(forms.ModelForm):
    segments = forms.MultipleChoiceField(
        label=_("target segments"),
        choices=Segment.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Members in any of these segments (as of the last health refresh) are eligible."),
    )
    language = forms.ChoiceField(label=_("language"), choices=_language_choices, required=False)

    class Meta:
        model = Campaign
        fields = [
            "program",
            "name",
            "is_active",
            "segments",
            "cooldown_days",
            "incentive",
            "incentive_points",
            "incentive_reward",
            "incentive_valid_days",
            "language",
            "subject",
            "text_template",
            "html_template",
            "send_after",
            "send_before",
            "control_percent",
            "attribution_days",
        ]
        widgets = {
            "subject": forms.TextInput(attrs={"class": "vLargeTextField", "style": "width: 40em"}),
            "text_template": forms.Textarea(attrs={"rows": 14, "cols": 90}),
            "html_template": forms.Textarea(attrs={"rows": 14, "cols": 90}),
        }

    def clean_segments(self) -> list[str]:
        return [str(segment) for segment in self.cleaned_data["segments"]]

    def clean(self):
        cleaned = super().clean()
        incentive = cleaned.get("incentive")
        if incentive == Campaign.Incentive.POINTS and not cleaned.get("incentive_points"):
            self.add_error("incentive_points", gettext("Give a number of bonus points above 0."))
        reward, program = cleaned.get("incentive_reward"), cleaned.get("program")
        if incentive == Campaign.Incentive.REWARD and reward is None:
            self.add_error("incentive_reward", gettext("Choose the reward the email gives."))
        if reward is not None and program is not None and reward.program_id != program.pk:
            self.add_error("incentive_reward", gettext("Choose a reward of the same programme."))
        for field in TEMPLATE_FIELDS:
            source = cleaned.get(field)
            if not source:
                continue
            try:
                Template(source)
            except TemplateSyntaxError as exc:
                self.add_error(field, gettext("This template does not compile: %(error)s") % {"error": exc})
        after, before = cleaned.get("send_after"), cleaned.get("send_before")
        if after is not None and after == before:
            self.add_error("send_before", gettext("The window must not start and end at the same time."))
        return cleaned


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    list_display = [
        "name",
        "program",
        "segment_list",
        "incentive_summary",
        "is_active",
        "last_run_at",
        "sent_count",
        "converted_count",
    ]
    list_filter = ["is_active", "program", "incentive"]
    list_select_related = ["program", "incentive_reward"]
    search_fields = ["name"]
    readonly_fields = ["last_run_at", "schedule", "report"]
    actions = ["run_now"]
    fieldsets = [
        (None, {"fields": ["program", "name", "is_active"]}),
        (_("Targeting"), {"fields": ["segments", "cooldown_days"]}),
        (_("Incentive"), {"fields": ["incentive", "incentive_points", "incentive_reward", "incentive_valid_days"]}),
        (
            _("Email"),
            {
                "fields": ["language", "subject", "text_template", "html_template"],
                "description": _(
                    "Django template syntax. Variables: first_name, balance, tier, incentive, incentive_expires_on, "
                    "shop_name, shop_url, unsubscribe_url. Links to the shop are tracked; the HTML version gets a "
                    "footer with the unsubscribe link."
                ),
            },
        ),
        (_("Timing"), {"fields": ["send_after", "send_before", "schedule", "last_run_at"]}),
        (_("Control group and attribution"), {"fields": ["control_percent", "attribution_days"]}),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: Campaign | None = None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None:
            fieldsets.append((_("Report"), {"fields": ["report"]}))
        return fieldsets

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        sent = Q(messages__status=Message.Status.SENT)
        return (
            super()
            .get_queryset(request)
            .annotate(
                sent_count=Count("messages", filter=sent),
                converted_count=Count("messages", filter=sent & Q(messages__converted_at__isnull=False)),
            )
        )

    @admin.display(description=_("segments"))
    def segment_list(self, obj: Campaign) -> str:
        labels = dict(Segment.choices)
        return ", ".join(str(labels.get(segment, segment)) for segment in obj.segments or []) or "–"

    @admin.display(description=_("incentive"), ordering="incentive")
    def incentive_summary(self, obj: Campaign) -> str:
        if obj.incentive == Campaign.Incentive.POINTS:
            return ngettext("%d bonus point", "%d bonus points", obj.incentive_points) % obj.incentive_points
        if obj.incentive == Campaign.Incentive.REWARD:
            return str(obj.incentive_reward or "–")
        return "–"

    @admin.display(description=_("sent"), ordering="sent_count")
    def sent_count(self, obj: Campaign) -> int:
        return obj.sent_count

    @admin.display(description=_("converted"), ordering="converted_count")
    def converted_count(self, obj: Campaign) -> int:
        return obj.converted_count

    @admin.display(description=_("schedule"))
    def schedule(self, obj: Campaign | None) -> str:
        if obj is None or obj.pk is None:
            return gettext("Created on save: daily at 10:00, while the campaign is active.")
        if not apps.is_installed("django_celery_beat"):
            return gettext("Run loyalty.tasks.run_campaigns from your beat schedule (see docs/campaigns.md).")
        from django_celery_beat.models import PeriodicTask

        periodic = PeriodicTask.objects.select_related("crontab").filter(name=campaign_schedule_name(obj.pk)).first()
        if periodic is None:
            return "–"
        state = gettext("enabled") if periodic.enabled else gettext("disabled")
        try:
            url = reverse("admin:django_celery_beat_periodictask_change", args=[periodic.pk])
        except NoReverseMatch:
            return f"{periodic} ({state})"
        return format_html('<a href="{}">{}</a> ({})', url, periodic, state)

    @admin.display(description=_("report"))
    def report(self, obj: Campaign | None) -> str:
        if obj is None or obj.pk is None:
            return "–"
        data = campaign_report(campaign=obj)
        control = data["control"]
        currency = obj.program.currency

        def percent(value) -> str:
            return "–" if value is None else f"{value} %"

        rows = [
            (gettext("Selected (incl. control)"), data["eligible"], ""),
            (gettext("Queued"), data["queued"], ""),
            (gettext("Sent"), data["sent"], ""),
            (gettext("Failed"), data["failed"], ""),
            (gettext("Skipped"), data["skipped"], ""),
            (gettext("Opened"), data["opened"], ""),
            (gettext("Clicked"), data["clicked"], ""),
            (gettext("Unsubscribed"), data["unsubscribed"], ""),
            (gettext("Converted (sent)"), data["converted"], percent(data["conversion_rate"])),
            (gettext("Revenue (sent)"), f"{data['revenue']} {currency}", ""),
            (gettext("Control group"), control["members"], ""),
            (gettext("Converted (control)"), control["converted"], percent(control["conversion_rate"])),
            (gettext("Revenue (control)"), f"{control['revenue']} {currency}", ""),
            (gettext("Uplift (percentage points)"), "", "–" if data["uplift"] is None else f"{data['uplift']:+}"),
            (gettext("Relative uplift"), "", percent(data["relative_uplift"])),
        ]
        body = format_html_join(
            "", '<tr><th scope="row">{}</th><td>{}</td><td>{}</td></tr>', ((a, b, c) for a, b, c in rows)
        )
        return format_html(
            '<table class="loyalty-campaign-report"><thead><tr><th></th><th>{}</th><th>{}</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            gettext("count"),
            gettext("rate"),
            body,
        )

    @admin.action(description=_("Run selected campaigns now"), permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for campaign in queryset.select_related("program").order_by("pk"):
            if not (campaign.is_active and campaign.program.is_active):
                self.message_user(
                    request,
                    gettext("“%(name)s” is not active, or its programme is switched off: nothing was run.")
                    % {"name": campaign.name},
                    messages.WARNING,
                )
                continue
            counts = campaign_run(campaign=campaign)
            self.message_user(
                request,
                ngettext(
                    "“%(name)s”: %(queued)d email queued, %(control)d member(s) held out as the control group.",
                    "“%(name)s”: %(queued)d emails queued, %(control)d member(s) held out as the control group.",
                    counts["queued"],
                )
                % {"name": campaign.name, **counts},
                messages.SUCCESS,
            )


@admin.register(Message)
class MessageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """What each campaign did for each member: kept by the services, read here."""

    list_display = [
        "created_at",
        "campaign",
        "member_link",
        "cycle",
        "status",
        "segment",
        "to_email",
        "sent_at",
        "opened_at",
        "clicked_at",
        "converted_at",
        "revenue",
    ]
    list_filter = ["status", "campaign"]
    search_fields = ["member__user__email", "to_email"]
    list_select_related = ["campaign", "member__user"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description=_("member"), ordering="member__user__username")
    def member_link(self, obj: Message) -> str:
        return _member_link(obj.member)
