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
from ..health import risk
from ..health.rfm import DEFAULT_GRID, validate_grid
from ..models import CustomerHealth, HealthModelFit, HealthRun, HealthSettings, Segment, SegmentChange
from ..services.health import MIN_DETRACTORS_TO_LEARN, detractor_weight_in_use, health_refresh
from .base import ReadOnlyMixin, _member_link, _percent
from .dashboard.charts import svg_open

FEATURE_LABELS = {
    "intercept": _("intercept"),
    "lapse_logit": _("BG/NBD lapse log-odds"),
    "one_time": _("one-time buyer"),
    "log_weeks_since_last": _("log weeks since the last order"),
    "log_repeat": _("log repeat purchases"),
    "log_weeks_since_first": _("log weeks since the first order"),
    "one_time_log_weeks": _("one-time buyers: log weeks since their order"),
    "first_value": _("one-time buyers: log order value"),
    "used_code": _("one-time buyers: used a loyalty reward code"),
    "enrolled_before": _("one-time buyers: log weeks enrolled before the first order"),
    "opened": _("opened a campaign email"),
    "clicked": _("clicked a campaign email"),
    "unsubscribed": _("unsubscribed from a campaign email"),
    "survey_answered": _("answered a survey recently (not as a detractor)"),
}


def feature_label(name: str) -> str:
    if name.startswith(risk.CATEGORY_PREFIX):
        return _("one-time buyers: order in category %(category)s") % {"category": name[len(risk.CATEGORY_PREFIX) :]}
    return str(FEATURE_LABELS.get(name, name))


def reliability_svg(curve, *, chart_id: str = "reliability") -> str:
    """Predicted vs observed lapse by decile of the backtest's prediction, with the diagonal of perfect
    calibration: a small server-side SVG (no script), readable by screen readers through its title."""
    size, pad = 230, 40
    plot = size - 2 * pad

    def xy(p: float, o: float) -> tuple[str, str]:
        return f"{pad + plot * p:.1f}", f"{size - pad - plot * o:.1f}"

    parts = [
        svg_open(
            chart_id=chart_id,
            title=_("Reliability of the at-risk score in the backtest"),
            description=_("Predicted against observed lapse rate for each tenth of customers; the dashed diagonal is "
                          "perfect calibration."),  # fmt: skip
            width=size,
            height=size,
            css="ld-reliability",
        ),
        format_html(
            '<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#999"></rect>'
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="4 3"></line>',
            pad, pad, plot, plot, pad, size - pad, size - pad, pad,
        ),  # fmt: skip
    ]
    for tick in (0, 0.5, 1):
        x, _y = xy(tick, 0)
        _x, y = xy(0, tick)
        parts.append(
            format_html(
                '<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>'
                '<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>',
                x, size - pad + 13, f"{tick:.0%}", pad - 4, float(y) + 3, f"{tick:.0%}",
            )  # fmt: skip
        )
    parts.append(
        format_html(
            '<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>'
            '<text x="10" y="{}" font-size="11" text-anchor="middle" transform="rotate(-90 10 {})">{}</text>',
            size / 2, size - 4, _("predicted lapse"), size / 2, size / 2, _("observed lapse"),
        )  # fmt: skip
    )
    points = [xy(p, o) for p, o, _n in curve]
    if points:
        parts.append(
            format_html(
                '<polyline points="{}" fill="none" stroke="#417690" stroke-width="1.5"></polyline>',
                " ".join(f"{x},{y}" for x, y in points),
            )
        )
    for i, ((p, o, n), (x, y)) in enumerate(zip(curve, points, strict=True), start=1):
        parts.append(
            format_html(
                '<circle cx="{}" cy="{}" r="3.5" fill="#417690"><title>{}</title></circle>',
                x,
                y,
                _("tenth %(i)s: predicted %(p)s, observed %(o)s, %(n)s customers")
                % {"i": i, "p": f"{p:.1%}", "o": f"{o:.1%}", "n": f"{n:,}"},
            )
        )
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(str(part) for part in parts))


def backtest_html(fit: HealthModelFit | None) -> str:
    """The at-risk model learnt by the fit's backtest: AUC and calibration error, reliability curve, weights."""
    if fit is None or not fit.usable or not fit.risk_model:
        return _("No backtest yet: the at-risk score is the purchase model's lapse probability alone.")
    model = risk.RiskModel.from_dict(fit.risk_model)
    if model.ece is None:
        return format_html(
            _("At-risk score learnt from the last {} days: ROC AUC {} there (recency alone: {})."),
            fit.backtest_days,
            f"{fit.backtest_auc:.3f}",
            f"{fit.backtest_recency_auc:.3f}",
        )
    window_days = round(model.horizon * 7)
    horizon_days = round((model.target or model.horizon) * 7)
    if horizon_days > window_days:
        reach = format_html(
            _("The history allows a {}-day backtest; the purchase model carries the score on to the {}-day horizon."),
            window_days,
            horizon_days,
        )
    else:
        reach = format_html(_("The backtest covers the whole {}-day horizon."), horizon_days)
    if model.level:
        backtest, relation, drift, today = model.level
        reach = format_html(
            "{} {}",
            reach,
            format_html(
                _(
                    "The backtest's customers were {} days younger than today's, and {} of them lapsed in its "
                    "window. For today's customers the learnt weights give {}, that rate moved by the purchase "
                    "model's predicted change gives {}; the score's mean over the window is set to their "
                    "average, {}."
                ),
                window_days,
                f"{backtest:.1%}",
                f"{relation:.1%}",
                f"{drift:.1%}",
                f"{today:.1%}",
            ),
        )
    rows = format_html_join(
        "", "<tr><td>{}</td><td style=\"text-align:right\">{}</td></tr>",
        ((feature_label(name), f"{weight:+.3f}") for name, weight in model.named_weights),
    )  # fmt: skip
    return format_html(
        '<p>{} {}</p><div style="display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start">'
        '<div style="width:230px;flex:none">{}</div>'
        "<table><caption>{}</caption><thead><tr><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table></div>",
        format_html(
            _("Backtest over {} days: ROC AUC {} (recency alone: {}), expected calibration error {} points."),
            window_days,
            f"{fit.backtest_auc:.3f}",
            f"{fit.backtest_recency_auc:.3f}",
            f"{model.ece:.1f}",
        ),
        reach,
        reliability_svg(model.reliability, chart_id=f"reliability-{fit.pk or 0}"),
        _("Learnt weights (log-odds of lapsing; features this shop's data supports)"),
        _("feature"),
        _("weight"),
        rows,
    )


def detractor_weight_html(policy: HealthSettings | None, fit: HealthModelFit | None) -> str:
    """The detractor weight the refresh applies and where it comes from (learnt, or the setting)."""
    if policy is None:
        return ""
    in_use = detractor_weight_in_use(policy, fit)
    if not in_use.enabled:
        return _("Detractor answers are switched off (detractor weight 0).")
    if in_use.learnt:
        return format_html(
            _("Detractor weight in use: {}, learnt from the {} detractors in the backtest."),
            f"{in_use.value:.2f}",
            f"{in_use.learnt_from:,}",
        )
    return format_html(
        _("Detractor weight in use: {}, the setting (the backtest needs {} detractors to learn it)."),
        f"{in_use.value:.2f}",
        MIN_DETRACTORS_TO_LEARN,
    )


def model_status_html(program, policy: HealthSettings | None = None) -> str:
    """What scores the members now, said plainly (the fallback is not a failure)."""
    fit = selectors.latest_health_fit(program=program)
    if fit is None:
        return _("Not fitted yet: the nightly refresh fits the model on its first run.")
    if fit.usable:
        fitted = format_html(
            _("BG/NBD purchase model fitted {} on {} buyers (r={}, α={}, a={}, b={}, log-likelihood {})."),
            f"{timezone.localtime(fit.fitted_at):%Y-%m-%d %H:%M}",
            f"{fit.buyers:,}",
            f"{fit.r:.3f}",
            f"{fit.alpha:.3f}",
            f"{fit.a:.3f}",
            f"{fit.b:.3f}",
            f"{fit.log_likelihood:,.1f}",
        )
        if policy is None:
            policy = HealthSettings.objects.filter(program=program).first()
        voice = detractor_weight_html(policy, fit)
        if fit.backtest_auc is None:
            return format_html(
                "{} {} {}", fitted, _("At-risk score: the model's lapse probability (no backtest yet)."), voice
            )
        return format_html(
            "{} {} {}",
            fitted,
            format_html(
                _("At-risk score learnt from the last {} days: ROC AUC {} there (recency alone: {})."),
                fit.backtest_days,
                f"{fit.backtest_auc:.3f}",
                f"{fit.backtest_recency_auc:.3f}",
            ),
            voice,
        )
    headline = {
        HealthModelFit.Status.INSUFFICIENT: _("Not enough history for the purchase model yet"),
        HealthModelFit.Status.FAILED: _("The purchase model could not be fitted"),
    }[fit.status]
    return format_html(
        "<strong>{}</strong> ({}). {}",
        headline,
        fit.reason,
        _(
            "Meanwhile customers are segmented by RFM and flagged at risk when they are overdue against their "
            "own rhythm (the gap rule)."
        ),
    )


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
