"""What the health admin pages show about the model, as HTML: its status and why, the backtest's
reliability curve (inline SVG) and calibration, the learnt weights in words, the detractor weight."""

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from .. import selectors
from ..health import risk
from ..models import HealthModelFit, HealthSettings
from ..services.health import MIN_DETRACTORS_TO_LEARN, detractor_weight_in_use
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
        backtest, relation, drift, today, seen, newer = model.level
        if seen < 1:
            carried = _(
                "The backtest's customers were {} days younger than today's, and {} of them lapsed in its window. "
                "For the {} of today's customers it saw, the learnt weights give {}, and that rate moved by the "
                "purchase model's predicted change gives {}; for newer customers the learnt weights give {}. The "
                "score's mean over the window is set to {}: the average of the first two for the customers the "
                "backtest saw, the learnt weights for newer ones."
            )
            values = (window_days, f"{backtest:.1%}", f"{seen:.0%}", f"{relation:.1%}", f"{drift:.1%}",
                      f"{newer:.1%}", f"{today:.1%}")  # fmt: skip
        else:
            carried = _(
                "The backtest's customers were {} days younger than today's, and {} of them lapsed in its window. "
                "For today's customers the learnt weights give {}, that rate moved by the purchase model's "
                "predicted change gives {}; the score's mean over the window is set to their average, {}."
            )
            values = (window_days, f"{backtest:.1%}", f"{relation:.1%}", f"{drift:.1%}", f"{today:.1%}")
        reach = format_html("{} {}", reach, format_html(carried, *values))
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
