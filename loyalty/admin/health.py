"""Customer health in admin: who is at risk and why, the thresholds and what they flag, model fits."""

from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import selectors
from ..health.rfm import DEFAULT_GRID, validate_grid
from ..models import CustomerHealth, HealthModelFit, HealthRun, HealthSettings, Segment, SegmentChange
from ..services.health import health_refresh
from .base import ReadOnlyMixin, _member_link, _percent
from .health_panels import backtest_html, model_status_html


class HealthSettingsForm(forms.ModelForm):
    class Meta:
        model = HealthSettings
        fields = [
            "program",
            "horizon_days",
            "lapse_threshold",
            "gap_factor",
            "min_orders",
            "high_value_spend",
            "min_buyers_for_model",
            "min_history_days",
            "min_frequent_buyers",
            "detractor_days",
            "detractor_weight",
            "rfm_grid",
        ]

    def clean_rfm_grid(self):
        grid = self.cleaned_data["rfm_grid"] or {}
        if not isinstance(grid, dict):
            raise forms.ValidationError(_('The grid is a JSON object like {"5,5": "champions", ...}.'))
        problems = validate_grid(grid, set(Segment.values))
        if problems:
            raise forms.ValidationError(problems)
        return grid


@admin.register(HealthSettings)
class HealthSettingsAdmin(admin.ModelAdmin):
    form = HealthSettingsForm
    list_display = ["program", "horizon_days", "lapse_threshold", "gap_factor", "min_orders", "model_state", "flagged"]
    list_select_related = ["program"]
    readonly_fields = ["model_status", "backtest", "what_it_flags", "grid_table"]
    fieldsets = [
        (None, {"fields": ["program", "model_status", "backtest"]}),
        (
            _("At risk"),
            {
                "fields": [
                    "horizon_days",
                    "lapse_threshold",
                    "gap_factor",
                    "min_orders",
                    "high_value_spend",
                    "what_it_flags",
                ]
            },
        ),
        (
            _("When the purchase model is used"),
            {"fields": ["min_buyers_for_model", "min_history_days", "min_frequent_buyers"]},
        ),
        (_("Customer voice"), {"fields": ["detractor_days", "detractor_weight"]}),
        (_("RFM segments"), {"fields": ["grid_table", "rfm_grid"], "classes": ["collapse"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "program"] if obj else self.readonly_fields

    def get_queryset(self, request):
        # The list's "model" and "at risk now" columns: one query for the page, not two per row.
        latest_fit = HealthModelFit.objects.filter(program=OuterRef("program")).order_by("-fitted_at", "-id")
        latest_run = HealthRun.objects.filter(program=OuterRef("program")).order_by("-started_at", "-id")
        return (
            super()
            .get_queryset(request)
            .annotate(
                fit_status=Subquery(latest_fit.values("status")[:1]),
                run_members=Subquery(latest_run.values("members")[:1]),
                run_at_risk=Subquery(latest_run.values("at_risk")[:1]),
            )
        )

    @admin.display(description=_("model"))
    def model_state(self, obj: HealthSettings) -> str:
        status = getattr(obj, "fit_status", None)
        return HealthModelFit.Status(status).label if status else "–"

    @admin.display(description=_("at risk now"))
    def flagged(self, obj: HealthSettings) -> str:
        members, at_risk = getattr(obj, "run_members", None), getattr(obj, "run_at_risk", None)
        if not members:
            return "–"
        return f"{at_risk:,} ({at_risk / members:.1%})"

    @admin.display(description=_("who scores the members"))
    def model_status(self, obj: HealthSettings) -> str:
        return model_status_html(obj.program, obj) if obj and obj.pk else "–"

    @admin.display(description=_("at-risk score"))
    def backtest(self, obj: HealthSettings) -> str:
        return backtest_html(selectors.latest_health_fit(program=obj.program)) if obj and obj.pk else "–"

    @admin.display(description=_("what these thresholds flag"))
    def what_it_flags(self, obj: HealthSettings) -> str:
        run = selectors.latest_health_run(program=obj.program) if obj and obj.pk else None
        if run is None or run.finished_at is None:
            return _("No refresh yet.")
        lines = [
            format_html(
                _("Last refresh {}: {} of {} members at risk ({}); {} flagged by the model, {} by the gap rule."),
                f"{timezone.localtime(run.started_at):%Y-%m-%d %H:%M}",
                f"{run.at_risk:,}",
                f"{run.members:,}",
                _percent(run.at_risk / run.members if run.members else None),
                f"{run.flagged_by_model:,}",
                f"{run.flagged_by_gap:,}",
            )
        ]
        if run.threshold_shares:
            rows = format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td></tr>",
                (
                    (
                        format_html("<strong>{}</strong>", t) if float(t) == float(obj.lapse_threshold) else t,
                        _percent(share),
                    )
                    for t, share in sorted(run.threshold_shares.items())
                ),
            )
            lines.append(
                format_html(
                    '<table style="margin-top:.5em"><thead><tr><th>{}</th><th>{}</th></tr></thead>'
                    "<tbody>{}</tbody></table>",
                    _("lapse threshold"),
                    _("share of the {} customers with a real history it flags").format(f"{run.eligible:,}"),
                    rows,
                )
            )
        else:
            lines.append(_("Threshold shares appear once the purchase model scores the members."))
        return mark_safe("<br>".join(str(line) for line in lines))  # parts are escaped above

    @admin.display(description=_("grid (R rows, FM columns)"))
    def grid_table(self, obj: HealthSettings) -> str:
        grid = {**DEFAULT_GRID, **((obj.rfm_grid if obj else None) or {})}
        labels = dict(Segment.choices)
        header = format_html_join("", "<th>FM {}</th>", ((fm,) for fm in range(1, 6)))
        body = format_html_join(
            "",
            "<tr><th>R {}</th>{}</tr>",
            (
                (
                    r,
                    format_html_join(
                        "", "<td>{}</td>", ((labels.get(grid[f"{r},{fm}"], grid[f"{r},{fm}"]),) for fm in range(1, 6))
                    ),
                )
                for r in range(5, 0, -1)
            ),
        )
        return format_html("<table><thead><tr><th></th>{}</tr></thead><tbody>{}</tbody></table>", header, body)


@admin.register(CustomerHealth)
class CustomerHealthAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "member_link",
        "segment",
        "risk_reason",
        "recency_days",
        "gap",
        "orders",
        "monetary",
        "lapse",
        "expected_next_order_on",
        "predicted_clv",
        "since",
    ]
    list_filter = [
        "program",
        "segment",
        "at_risk",
        "risk_reason",
        "scored_by",
        ("segment_since", admin.DateFieldListFilter),
    ]
    search_fields = ["member__user__email", "member__user__first_name", "member__user__last_name"]
    list_select_related = ["member__user"]
    ordering = ["-at_risk", "-p_lapse", "-recency_days"]
    date_hierarchy = "segment_since"
    actions = ["refresh_now"]

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("member"), ordering="member__user__email")
    def member_link(self, obj: CustomerHealth) -> str:
        return _member_link(obj.member)

    @admin.display(description=_("P(no order in horizon)"), ordering="p_lapse")
    def lapse(self, obj: CustomerHealth) -> str:
        return _percent(obj.p_lapse)

    @admin.display(description=_("typical gap (days)"), ordering="typical_gap_days")
    def gap(self, obj: CustomerHealth) -> str:
        return "–" if obj.typical_gap_days is None else f"{obj.typical_gap_days:.0f}"

    @admin.display(description=_("in segment since"), ordering="segment_since")
    def since(self, obj: CustomerHealth) -> str:
        return f"{timezone.localtime(obj.segment_since):%Y-%m-%d}"

    def changelist_view(self, request: HttpRequest, extra_context=None):
        program = selectors.default_health_program()
        if program is not None and request.method == "GET":
            fit = selectors.latest_health_fit(program=program)
            if fit is not None and not fit.usable:
                messages.info(request, model_status_html(program))
        return super().changelist_view(request, extra_context)

    def has_refresh_now_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("loyalty.view_customerhealth") and request.user.is_staff

    @admin.action(description=_("Refresh health of these members' programmes now"), permissions=["refresh_now"])
    def refresh_now(self, request: HttpRequest, queryset: QuerySet[CustomerHealth]):
        programs = {h.program for h in queryset.select_related("program").distinct()[:1000]}
        for program in programs:
            run = health_refresh(program=program)
            self.message_user(
                request,
                ngettext(
                    "%(program)s: %(n)d member scored, %(risk)d at risk.",
                    "%(program)s: %(n)d members scored, %(risk)d at risk.",
                    run.members,
                )
                % {"program": program, "n": run.members, "risk": run.at_risk},
                messages.SUCCESS,
            )


@admin.register(SegmentChange)
class SegmentChangeAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["changed_at", "member_link", "from_segment", "to_segment"]
    list_filter = ["to_segment", "from_segment", ("changed_at", admin.DateFieldListFilter), "program"]
    search_fields = ["member__user__email"]
    list_select_related = ["member__user"]
    date_hierarchy = "changed_at"

    @admin.display(description=_("member"))
    def member_link(self, obj: SegmentChange) -> str:
        return _member_link(obj.member)


@admin.register(HealthModelFit)
class HealthModelFitAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "fitted_at",
        "program",
        "status",
        "buyers",
        "frequent_buyers",
        "params",
        "log_likelihood",
        "auc",
        "ece",
        "detractor_weight",
        "secs",
    ]
    list_filter = ["program", "status"]
    date_hierarchy = "fitted_at"
    readonly_fields = ["backtest"]

    @admin.display(description=_("backtest ROC AUC"))
    def auc(self, obj: HealthModelFit) -> str:
        return "–" if obj.backtest_auc is None else f"{obj.backtest_auc:.3f}"

    @admin.display(description=_("calibration error (points)"))
    def ece(self, obj: HealthModelFit) -> str:
        ece = (obj.risk_model or {}).get("ece")
        return "–" if ece is None else f"{ece:.1f}"

    @admin.display(description=_("at-risk score"))
    def backtest(self, obj: HealthModelFit) -> str:
        return backtest_html(obj)

    @admin.display(description=_("learnt detractor weight"))
    def detractor_weight(self, obj: HealthModelFit) -> str:
        learnt = obj.risk_model or {}
        if learnt.get("detractor_weight") is None:
            return "–"
        return format_html(
            _("{} (from {} detractors)"), f"{learnt['detractor_weight']:.2f}", f"{learnt.get('detractor_n', 0):,}"
        )

    @admin.display(description=_("r, α, a, b"))
    def params(self, obj: HealthModelFit) -> str:
        if not obj.usable:
            return obj.reason or "–"
        return f"{obj.r:.3f}, {obj.alpha:.3f}, {obj.a:.3f}, {obj.b:.3f}"

    @admin.display(description=_("seconds"))
    def secs(self, obj: HealthModelFit) -> str:
        return f"{obj.seconds:.2f}"


@admin.register(HealthRun)
class HealthRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["started_at", "program", "scored_by", "members", "eligible", "at_risk", "chunks", "secs"]
    list_filter = ["program", "scored_by"]
    list_select_related = ["program"]
    date_hierarchy = "started_at"

    @admin.display(description=_("seconds"))
    def secs(self, obj: HealthRun) -> str:
        return f"{obj.seconds:.1f}"
