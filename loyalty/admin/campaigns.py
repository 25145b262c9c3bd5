"""Admin for re-engagement campaigns and their messages (registered on import from loyalty/admin/__init__.py)."""

from __future__ import annotations

import smtplib
from decimal import Decimal
from urllib.parse import urlencode

from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.sites import NotRegistered  # admin.exceptions only from Django 5.0
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..compat import get_model_admin
from ..models import Campaign, Member, Message, Segment
from ..selectors import campaign_report
from ..services.campaigns import (
    TEST_SUBJECT_PREFIX,
    CampaignTemplateError,
    campaign_eligible_members,
    campaign_next_send_at,
    campaign_preview,
    campaign_preview_member,
    campaign_run,
    campaign_sample_member,
    campaign_schedule_name,
    campaign_send_test,
)
from .base import ReadOnlyMixin, _member_link

TEMPLATE_FIELDS = ("subject", "text_template", "html_template")
#: Other members matching the preview's search, offered as links.
PREVIEW_MATCHES = 10


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
        # The templates are checked by Campaign.clean() (the staff template sandbox), run by the form.
        after, before = cleaned.get("send_after"), cleaned.get("send_before")
        if after is not None and after == before:
            self.add_error("send_before", gettext("The window must not start and end at the same time."))
        return cleaned


def _percent(value: Decimal | None) -> str:
    return "–" if value is None else f"{value} %"


def _share(part: int, whole: int) -> Decimal | None:
    """``part / whole`` in percent, two places, as the report's other rates; ``None`` for 0 / 0."""
    return (Decimal(part) * 100 / whole).quantize(Decimal("0.01")) if whole else None


def _runnable(campaign: Campaign) -> bool:
    """Whether running the campaign now would queue anything: it and its programme are active."""
    return campaign.is_active and campaign.program.is_active


def _user_email(user) -> str:
    return (getattr(user, user.get_email_field_name(), "") or "").strip()


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    change_form_template = "admin/loyalty/campaign/change_form.html"
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
        sent = data["sent"]
        uplift = data["uplift"]
        rows = [
            (gettext("Selected (control group included)"), data["eligible"], ""),
            (gettext("Queued"), data["queued"], ""),
            (gettext("Sent"), sent, ""),
            (gettext("Failed"), data["failed"], ""),
            (gettext("Skipped"), data["skipped"], ""),
            (gettext("Opened (of sent)"), data["opened"], _percent(_share(data["opened"], sent))),
            (gettext("Clicked (of sent)"), data["clicked"], _percent(_share(data["clicked"], sent))),
            (gettext("Unsubscribed (of sent)"), data["unsubscribed"], _percent(_share(data["unsubscribed"], sent))),
            (gettext("Converted (of sent)"), data["converted"], _percent(data["conversion_rate"])),
            (gettext("Revenue (sent)"), f"{data['revenue']} {currency}", ""),
            (gettext("Control group (no email)"), control["members"], ""),
            (gettext("Converted (of control)"), control["converted"], _percent(control["conversion_rate"])),
            (gettext("Revenue (control)"), f"{control['revenue']} {currency}", ""),
            (gettext("Uplift (conversion rate, sent − control)"), "", "–" if uplift is None else f"{uplift:+} pp"),
            (gettext("Relative uplift (of the control rate)"), "", _percent(data["relative_uplift"])),
        ]
        body = format_html_join(
            "", '<tr><th scope="row">{}</th><td>{}</td><td>{}</td></tr>', ((a, b, c) for a, b, c in rows)
        )
        return format_html(
            '<table class="loyalty-campaign-report"><thead><tr><th></th><th>{}</th><th>{}</th></tr></thead>'
            '<tbody>{}</tbody></table><p class="help">{}</p>',
            gettext("count"),
            gettext("rate"),
            body,
            gettext(
                "Counts are messages, one per member and run day. Opens are a rough measure (image blocking, "
                "privacy proxies); clicks and conversions are the numbers to trust. “–”: no denominator yet."
            ),
        )

    def _run(self, request: HttpRequest, campaign: Campaign) -> None:
        """Run one campaign now (the service the schedule calls) and tell staff what it queued."""
        if not _runnable(campaign):
            self.message_user(
                request,
                gettext("“%(name)s” is not active, or its programme is switched off: nothing was run.")
                % {"name": campaign.name},
                messages.WARNING,
            )
            return
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

    @admin.action(description=_("Run selected campaigns now"), permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for campaign in queryset.select_related("program").order_by("pk"):
            self._run(request, campaign)

    # --- views on one campaign: preview, test send, run now ---------------------------------

    def get_urls(self):
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<path:object_id>/preview/", self.admin_site.admin_view(self.preview_view), name=f"{info}_preview"),
            path(
                "<path:object_id>/preview/send-test/",
                self.admin_site.admin_view(self.send_test_view),
                name=f"{info}_send_test",
            ),
            path("<path:object_id>/run/", self.admin_site.admin_view(self.run_view), name=f"{info}_run"),
            *super().get_urls(),
        ]

    def _url(self, name: str, campaign: Campaign) -> str:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return reverse(f"admin:{info}_{name}", args=[quote(campaign.pk)], current_app=self.admin_site.name)

    def _can_pick_members(self, request: HttpRequest) -> bool:
        """Real members' data in the preview only for staff who may see members anyway."""
        try:
            return get_model_admin(self.admin_site, Member).has_view_permission(request)
        except NotRegistered:
            return request.user.has_perm("loyalty.view_member")

    def _preview_member(self, request: HttpRequest, campaign: Campaign, query: str) -> tuple[Member, list[Member], str]:
        """The member to render for, the other members the search found, and a note when it found nobody.

        ``query``: a member id, or text searched like the member list's search box (``MemberAdmin``'s
        ``search_fields``), within the campaign's programme. Empty: ``campaign_preview_member``.
        """
        if not self._can_pick_members(request):
            return campaign_sample_member(campaign=campaign), [], ""
        if not query:
            return campaign_preview_member(campaign=campaign), [], ""
        members = Member.objects.filter(program_id=campaign.program_id).select_related(
            "program", "user", "tier", "health"
        )
        if query.isdigit():  # a member id, and only that: digits would match referral codes at random
            matches = list(members.filter(pk=int(query)))
        else:
            try:
                member_admin = get_model_admin(self.admin_site, Member)
            except NotRegistered:
                found = members.filter(**{f"user__{get_user_model().get_email_field_name()}__iexact": query})
            else:
                found, duplicates = member_admin.get_search_results(request, members, query)
                found = found.distinct() if duplicates else found
            matches = list(found.order_by("pk")[: PREVIEW_MATCHES + 1])
        if not matches:
            note = gettext("No member of %(program)s matches “%(query)s”; showing the default member instead.") % {
                "program": campaign.program,
                "query": query,
            }
            return campaign_preview_member(campaign=campaign), [], note
        return matches[0], matches[1:], ""

    def _campaign_or_redirect(self, request: HttpRequest, object_id: str) -> Campaign | HttpResponse:
        campaign = self.get_object(request, unquote(object_id))
        if campaign is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return campaign

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The campaign's email for one member, rendered without sending or writing anything."""
        campaign = self._campaign_or_redirect(request, object_id)
        if isinstance(campaign, HttpResponse):
            return campaign
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        query = request.GET.get("member", "").strip()
        member, matches, note = self._preview_member(request, campaign, query)
        try:
            rendered, error = campaign_preview(campaign=campaign, member=member), ""
        except CampaignTemplateError as exc:
            rendered, error = None, exc.message
        try:
            health = member.health if member.pk else None
        except ObjectDoesNotExist:
            health = None
        return TemplateResponse(
            request,
            "admin/loyalty/campaign/preview.html",
            {
                **self.admin_site.each_context(request),
                "title": gettext("Preview of “%(name)s”") % {"name": campaign.name},
                "opts": self.opts,
                "original": campaign,
                "change_url": self._url("change", campaign),
                "send_test_url": self._url("send_test", campaign),
                "can_pick": self._can_pick_members(request),
                "query": query,
                "member": member,
                "member_email": _user_email(member.user),
                "member_name": member.user.get_full_name() if hasattr(member.user, "get_full_name") else "",
                "health": health,
                "matches": matches,
                "note": note,
                "rendered": rendered,
                "error": error,
                "from_email": settings.DEFAULT_FROM_EMAIL,
                "test_to": _user_email(request.user),
                "test_prefix": TEST_SUBJECT_PREFIX.strip(),
            },
        )

    def send_test_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: send the preview to the signed-in staff user's own address, prefixed "[TEST]"."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        campaign = self._campaign_or_redirect(request, object_id)
        if isinstance(campaign, HttpResponse):
            return campaign
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        member, _matches, _note = self._preview_member(request, campaign, request.POST.get("member", "").strip())
        back = self._url("preview", campaign)
        if member.pk is not None and self._can_pick_members(request):
            back = f"{back}?{urlencode({'member': member.pk})}"
        to = _user_email(request.user)
        if not to:
            self.message_user(
                request,
                gettext(
                    "Your user account has no email address, so the test cannot be sent. "
                    "Add an address to your user (Authentication → Users) and try again."
                ),
                messages.ERROR,
            )
            return HttpResponseRedirect(back)
        try:
            rendered = campaign_send_test(campaign=campaign, member=member, to=to)
        except CampaignTemplateError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        except (smtplib.SMTPException, OSError) as exc:
            self.message_user(
                request,
                gettext("The test could not be sent: %(error)s") % {"error": f"{type(exc).__name__}: {exc}"},
                messages.ERROR,
            )
        else:
            self.message_user(
                request,
                gettext("Test email “%(subject)s” sent to %(to)s.")
                % {"subject": f"{TEST_SUBJECT_PREFIX}{rendered.subject}", "to": to},
                messages.SUCCESS,
            )
        return HttpResponseRedirect(back)

    def run_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: how many members would be selected now; POST: run the campaign (``campaign_run``)."""
        campaign = self._campaign_or_redirect(request, object_id)
        if isinstance(campaign, HttpResponse):
            return campaign
        if not self.has_change_permission(request, campaign):
            raise PermissionDenied
        change_url = self._url("change", campaign)
        if request.method == "POST":
            self._run(request, campaign)
            return HttpResponseRedirect(change_url)
        now = timezone.now()
        eligible = campaign_eligible_members(campaign=campaign, now=now).count()
        next_send_at = campaign_next_send_at(campaign=campaign, now=now)
        return TemplateResponse(
            request,
            "admin/loyalty/campaign/run_confirm.html",
            {
                **self.admin_site.each_context(request),
                "title": gettext("Run “%(name)s” now?") % {"name": campaign.name},
                "opts": self.opts,
                "original": campaign,
                "change_url": change_url,
                "runnable": _runnable(campaign),
                "eligible": eligible,
                "segments": self.segment_list(campaign),
                "next_send_at": next_send_at and timezone.localtime(next_send_at),
            },
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
