"""Customer health: what the nightly refresh knows of each member, and how it decides."""

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..compat import check_constraint
from .purchases import MONEY


class Segment(models.TextChoices):
    """The eleven customer groups shops know from Shopify's RFM report."""

    CHAMPIONS = "champions", _("Champions")
    LOYAL = "loyal", _("Loyal")
    ACTIVE = "active", _("Active")
    PROMISING = "promising", _("Promising")
    NEW = "new", _("New")
    NEEDS_ATTENTION = "needs_attention", _("Needs attention")
    AT_RISK = "at_risk", _("At risk")
    PREVIOUSLY_LOYAL = "previously_loyal", _("Previously loyal")
    ALMOST_LOST = "almost_lost", _("Almost lost")
    DORMANT = "dormant", _("Dormant")
    PROSPECTS = "prospects", _("Prospects")


def default_rfm_grid() -> dict[str, str]:
    from ..health.rfm import DEFAULT_GRID

    return dict(DEFAULT_GRID)


class HealthSettings(models.Model):
    """A programme's at-risk thresholds; read by the refresh, shown (with their effect) in admin."""

    program = models.OneToOneField("loyalty.Program", on_delete=models.CASCADE, related_name="health_settings")
    horizon_days = models.PositiveIntegerField(
        _("horizon (days)"),
        default=90,
        validators=[MinValueValidator(1)],
        help_text=_("The at-risk score is the probability of no purchase within this many days."),
    )
    lapse_threshold = models.DecimalField(
        _("lapse probability threshold"),
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.700"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("0.999"))],
        help_text=_("A customer with a real history is at risk when P(no purchase within the horizon) exceeds this."),
    )
    gap_factor = models.DecimalField(
        _("gap factor"),
        max_digits=4,
        decimal_places=2,
        default=Decimal("2.50"),
        validators=[MinValueValidator(Decimal("1.00"))],
        help_text=_("Or when the days since their last order exceed this many times their own typical gap."),
    )
    min_orders = models.PositiveIntegerField(
        _("orders for a real history"),
        default=2,
        validators=[MinValueValidator(1)],
        help_text=_("Customers with at least this many orders (or high spenders) can be flagged at risk."),
    )
    high_value_spend = models.DecimalField(
        _("high-value spend"),
        null=True,
        blank=True,
        help_text=_("Total spend that counts as a real history even with one order. Empty: the top fifth by spend."),
        **MONEY,
    )
    min_buyers_for_model = models.PositiveIntegerField(
        _("buyers needed for the model"),
        default=500,
        help_text=_("Below this, or with too short a history, at-risk uses RFM and gap rules only."),
    )
    min_history_days = models.PositiveIntegerField(_("history needed for the model (days)"), default=180)
    min_frequent_buyers = models.PositiveIntegerField(
        _("3-order customers needed for the model"),
        default=30,
        help_text=_("Repeat behaviour the model can learn from: customers with three or more orders."),
    )
    detractor_days = models.PositiveIntegerField(
        _("detractor answers count for (days)"),
        default=90,
        help_text=_("A survey answer of NPS 0-6 or CSAT 1-2 counts against a member's health for this many days."),
    )
    detractor_weight = models.DecimalField(
        _("detractor weight (log-odds)"),
        max_digits=4,
        decimal_places=2,
        default=Decimal("0.50"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_(
            "Added to the log-odds of lapsing for a recent detractor until the weekly backtest learns it "
            "(from 30 or more detractor answers). 0 turns feedback off."
        ),
    )
    rfm_grid = models.JSONField(
        _("RFM grid"),
        default=default_rfm_grid,
        help_text=_('Segment for each "R,FM" score pair (FM = (F + M) / 2, rounded up).'),
    )

    class Meta:
        verbose_name = _("health settings")
        verbose_name_plural = _("health settings")

    def __str__(self) -> str:
        return f"{self.program} health settings"


class HealthModelFit(models.Model):
    """One weekly fit of BG/NBD (purchases) and Gamma-Gamma (spend), or why there was none."""

    class Status(models.TextChoices):
        FITTED = "fitted", _("Fitted")
        INSUFFICIENT = "insufficient", _("Not enough history: RFM and gap rules only")
        FAILED = "failed", _("Fit failed: RFM and gap rules only")

    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="health_fits")
    fitted_at = models.DateTimeField(_("fitted at"), db_index=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    buyers = models.PositiveIntegerField(_("buyers"), default=0)
    frequent_buyers = models.PositiveIntegerField(_("3-order customers"), default=0)
    history_days = models.PositiveIntegerField(_("history (days)"), default=0)
    r = models.FloatField(null=True, blank=True)
    alpha = models.FloatField(null=True, blank=True)
    a = models.FloatField(null=True, blank=True)
    b = models.FloatField(null=True, blank=True)
    log_likelihood = models.FloatField(_("log-likelihood"), null=True, blank=True)
    gg_p = models.FloatField(null=True, blank=True)
    gg_q = models.FloatField(null=True, blank=True)
    gg_v = models.FloatField(null=True, blank=True)
    risk_model = models.JSONField(
        _("at-risk model"),
        null=True,
        blank=True,
        help_text=_("Weights learnt from a backtest on the shop's own history (see docs/health.md)."),
    )
    backtest_days = models.PositiveIntegerField(_("backtest window (days)"), null=True, blank=True)
    backtest_auc = models.FloatField(_("backtest ROC AUC"), null=True, blank=True)
    backtest_recency_auc = models.FloatField(_("backtest ROC AUC of recency alone"), null=True, blank=True)
    seconds = models.FloatField(_("fit time (s)"), default=0)

    class Meta:
        ordering = ["-fitted_at", "-id"]
        get_latest_by = "fitted_at"
        verbose_name = _("health model fit")
        verbose_name_plural = _("health model fits")

    def __str__(self) -> str:
        return f"{self.program} {self.get_status_display()} {self.fitted_at:%Y-%m-%d}"

    @property
    def usable(self) -> bool:
        return self.status == self.Status.FITTED and None not in (self.r, self.alpha, self.a, self.b)


class HealthRun(models.Model):
    """One refresh of a programme's customer health, with what it flagged."""

    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="health_runs")
    started_at = models.DateTimeField(_("started at"), db_index=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    fit = models.ForeignKey(HealthModelFit, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    scored_by = models.CharField(_("scored by"), max_length=12, blank=True)
    cutpoints = models.JSONField(_("RFM quintile breakpoints"), default=dict, blank=True)
    members = models.PositiveIntegerField(_("members scored"), default=0)
    at_risk = models.PositiveIntegerField(_("at risk"), default=0)
    flagged_by_model = models.PositiveIntegerField(_("flagged by the model"), default=0)
    flagged_by_gap = models.PositiveIntegerField(_("flagged by the gap rule"), default=0)
    eligible = models.PositiveIntegerField(_("with a real history"), default=0)
    threshold_shares = models.JSONField(
        _("share flagged per threshold"),
        default=dict,
        blank=True,
        help_text=_("Of the members with a real history: the share each lapse threshold would flag."),
    )
    segment_counts = models.JSONField(_("members per segment"), default=dict, blank=True)
    chunks = models.PositiveIntegerField(_("chunks"), default=0)
    chunks_done = models.PositiveIntegerField(_("chunks done"), default=0)
    seconds = models.FloatField(_("duration (s)"), default=0)

    class Meta:
        ordering = ["-started_at", "-id"]
        get_latest_by = "started_at"
        verbose_name = _("health refresh")
        verbose_name_plural = _("health refreshes")

    def __str__(self) -> str:
        return f"{self.program} {self.started_at:%Y-%m-%d %H:%M}"


class CustomerHealth(models.Model):
    """A member's purchase rhythm, scores and segment as of the last refresh (one row per member)."""

    class Reason(models.TextChoices):
        RFM = "rfm", _("Recency slipping (RFM)")
        MODEL = "model", _("Likely to lapse")
        GAP = "gap", _("Overdue for their rhythm")
        BOTH = "both", _("Likely to lapse and overdue")
        VOICE = "voice", _("Unhappy in a recent survey")

    member = models.OneToOneField("loyalty.Member", on_delete=models.CASCADE, related_name="health", primary_key=True)
    # Rewritten every night: only the primary key and (program, segment) are indexed, so most
    # updates stay on their page (PostgreSQL HOT updates; the table's fillfactor leaves room).
    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="+", db_index=False)
    orders = models.PositiveIntegerField(_("orders"), default=0)
    frequency = models.PositiveIntegerField(
        _("repeat purchases"), default=0, help_text=_("Purchase days after the first.")
    )
    first_purchase_at = models.DateTimeField(_("first purchase"), null=True, blank=True)
    last_purchase_at = models.DateTimeField(_("last purchase"), null=True, blank=True)
    recency_days = models.PositiveIntegerField(_("days since last order"), null=True, blank=True)
    age_days = models.PositiveIntegerField(_("customer age (days)"), null=True, blank=True)
    typical_gap_days = models.FloatField(_("typical gap (days)"), null=True, blank=True)
    total_spent = models.DecimalField(_("total spent"), default=Decimal("0.00"), **MONEY)
    monetary = models.DecimalField(_("average order value"), default=Decimal("0.00"), **MONEY)
    r_score = models.PositiveSmallIntegerField(_("R"), null=True, blank=True)
    f_score = models.PositiveSmallIntegerField(_("F"), null=True, blank=True)
    m_score = models.PositiveSmallIntegerField(_("M"), null=True, blank=True)
    p_alive = models.FloatField(_("P(alive)"), null=True, blank=True)
    p_lapse = models.FloatField(
        _("P(no purchase in horizon)"), null=True, blank=True, help_text=_("The at-risk score from the model.")
    )
    expected_purchases = models.FloatField(_("expected purchases (90 days)"), null=True, blank=True)
    expected_next_order_on = models.DateField(_("expected next order"), null=True, blank=True)
    predicted_clv = models.DecimalField(_("predicted value (1 year)"), null=True, blank=True, **MONEY)
    detractor_at = models.DateTimeField(
        _("recent detractor answer"), null=True, blank=True, help_text=_("Within the days detractor answers count for.")
    )
    segment = models.CharField(_("segment"), max_length=20, choices=Segment.choices)
    segment_since = models.DateTimeField(_("in segment since"))
    at_risk = models.BooleanField(_("at risk"), default=False)
    risk_reason = models.CharField(_("why at risk"), max_length=5, choices=Reason.choices, blank=True)
    scored_by = models.CharField(_("scored by"), max_length=12, blank=True, help_text=_("bgnbd or rules"))
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("customer health")
        verbose_name_plural = _("customer health")
        indexes = [models.Index(fields=["program", "segment"], name="loyalty_health_segment")]
        constraints = [
            check_constraint(
                condition=Q(r_score__isnull=True) | Q(r_score__gte=1, r_score__lte=5), name="loyalty_health_r_1_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.get_segment_display()}"


class SegmentChange(models.Model):
    """A member moved between segments (so staff see who became at risk this week)."""

    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey("loyalty.Member", on_delete=models.CASCADE, related_name="segment_changes")
    from_segment = models.CharField(_("from"), max_length=20, choices=Segment.choices, blank=True)
    to_segment = models.CharField(_("to"), max_length=20, choices=Segment.choices)
    changed_at = models.DateTimeField(_("changed at"), db_index=True)

    class Meta:
        ordering = ["-changed_at", "-id"]
        verbose_name = _("segment change")
        verbose_name_plural = _("segment changes")
        indexes = [models.Index(fields=["program", "to_segment", "-changed_at"], name="loyalty_segchange_recent")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_segment or '-'} -> {self.to_segment}"
