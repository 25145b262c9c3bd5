"""Post-purchase satisfaction surveys: what staff ask, who was asked, and what they answered."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..compat import check_constraint
from ..nps import NPS_MAX, NPS_MIN
from .purchases import MONEY


class Survey(models.Model):
    """A programme's post-purchase survey: NPS, CSAT and a free-text question, asked days after payment.

    Points for an answer come from the programme's "Survey answered" earning rule, so they are
    switched on, off and reported like every other bonus.
    """

    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="surveys")
    name = models.CharField(_("name"), max_length=100)
    is_active = models.BooleanField(_("active"), default=True)
    ask_nps = models.BooleanField(
        _("ask NPS (0-10)"), default=True, help_text=_('"How likely are you to recommend us to a friend?"')
    )
    ask_csat = models.BooleanField(
        _("ask CSAT (1-5)"), default=True, help_text=_('"How satisfied are you with your order?"')
    )
    ask_comment = models.BooleanField(_("ask for a comment"), default=True)
    nps_question = models.CharField(
        _("NPS question"), max_length=200, blank=True, help_text=_("Empty: the standard question, translated.")
    )
    csat_question = models.CharField(
        _("CSAT question"), max_length=200, blank=True, help_text=_("Empty: the standard question, translated.")
    )
    comment_question = models.CharField(
        _("comment question"), max_length=200, blank=True, help_text=_("Empty: the standard question, translated.")
    )
    delay_days = models.PositiveIntegerField(
        _("delay (days)"),
        default=7,
        validators=[MinValueValidator(0)],
        help_text=_("The survey goes out this many days after the order was paid."),
    )
    window_days = models.PositiveIntegerField(
        _("send window (days)"),
        default=14,
        validators=[MinValueValidator(1)],
        help_text=_(
            "Orders paid longer ago than delay + window are never surveyed, so switching a survey on leaves old orders "
            "alone."
        ),
    )
    min_days_between = models.PositiveIntegerField(
        _("days between surveys"),
        default=60,
        help_text=_("A member gets at most one survey in this many days, however often they order."),
    )
    language = models.CharField(
        _("language"), max_length=10, blank=True, help_text=_("Empty: each member's own language.")
    )
    alert_email = models.EmailField(
        _("detractor alert to"),
        blank=True,
        help_text=_("Staff address notified when a high-value customer answers as a detractor. Empty: no email."),
    )
    alert_min_spend = models.DecimalField(
        _("high-value threshold (total spend)"),
        null=True,
        blank=True,
        help_text=_("Detractors who spent at least this are high value. Empty: the health settings' high-value spend."),
        **MONEY,
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["program", "-is_active", "name"]
        verbose_name = _("survey")
        verbose_name_plural = _("surveys")
        constraints = [
            models.UniqueConstraint(
                fields=["program"], condition=Q(is_active=True), name="loyalty_survey_one_active_per_program"
            ),
            check_constraint(
                condition=Q(ask_nps=True) | Q(ask_csat=True) | Q(ask_comment=True),
                name="loyalty_survey_asks_something",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class SurveyInvitation(models.Model):
    """One survey email for one order: the unique order is what makes the beat task idempotent."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")
        EXPIRED = "expired", _("Expired (not sent in time)")

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="invitations")
    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey("loyalty.Member", on_delete=models.CASCADE, related_name="survey_invitations")
    purchase = models.OneToOneField("loyalty.Purchase", on_delete=models.CASCADE, related_name="survey_invitation")
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.QUEUED)
    to_email = models.EmailField(_("sent to"), blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("selected at"), db_index=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    opened_at = models.DateTimeField(_("opened at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("survey invitation")
        verbose_name_plural = _("survey invitations")
        indexes = [models.Index(fields=["member", "-created_at"], name="loyalty_survey_inv_member")]

    def __str__(self) -> str:
        return f"{self.survey} -> {self.purchase_id}"


class SurveyResponse(models.Model):
    """A customer's answer about one order: one per order, editable for a day after the first submit."""

    survey = models.ForeignKey(Survey, on_delete=models.PROTECT, related_name="responses")
    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey("loyalty.Member", on_delete=models.CASCADE, related_name="survey_responses")
    purchase = models.OneToOneField("loyalty.Purchase", on_delete=models.CASCADE, related_name="survey_response")
    nps = models.PositiveSmallIntegerField(
        _("NPS score"), null=True, blank=True, validators=[MinValueValidator(NPS_MIN), MaxValueValidator(NPS_MAX)]
    )
    csat = models.PositiveSmallIntegerField(
        _("CSAT score"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    comment = models.TextField(_("comment"), blank=True, max_length=4000)
    is_detractor = models.BooleanField(
        _("detractor"), default=False, db_index=True, help_text=_("NPS 0-6 or CSAT 1-2.")
    )
    language = models.CharField(_("language"), max_length=10, blank=True)
    submitted_at = models.DateTimeField(_("answered at"), db_index=True)
    updated_at = models.DateTimeField(_("last changed at"))
    alerted_at = models.DateTimeField(_("staff alerted at"), null=True, blank=True)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        verbose_name = _("survey response")
        verbose_name_plural = _("survey responses")
        constraints = [
            check_constraint(condition=Q(nps__isnull=True) | Q(nps__lte=NPS_MAX), name="loyalty_response_nps_0_10"),
            check_constraint(
                condition=Q(csat__isnull=True) | Q(csat__gte=1, csat__lte=5), name="loyalty_response_csat_1_5"
            ),
            check_constraint(
                condition=Q(nps__isnull=False) | Q(csat__isnull=False) | ~Q(comment=""),
                name="loyalty_response_not_empty",
            ),
        ]
        indexes = [
            models.Index(fields=["program", "-submitted_at"], name="loyalty_response_recent"),
            models.Index(fields=["member", "-submitted_at"], name="loyalty_response_member"),
        ]

    def __str__(self) -> str:
        return f"{self.purchase_id}: NPS {self.nps}, CSAT {self.csat}"
