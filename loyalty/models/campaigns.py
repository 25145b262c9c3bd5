"""Re-engagement campaigns and the messages they send (one row per member and cycle)."""

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..compat import check_constraint
from .health import Segment
from .purchases import MONEY

DEFAULT_SUBJECT = "{{ first_name|default:'Hello' }}, we miss you at {{ shop_name }}"
DEFAULT_TEXT = """Hello {{ first_name|default:'there' }},

it has been a while since your last order, and we would love to see you again.
{% if incentive %}
{{ incentive }}{% if incentive_expires_on %} (until {{ incentive_expires_on }}){% endif %}.
{% endif %}
You have {{ balance }} points{% if tier %} and you are a {{ tier }} member{% endif %}.

Visit us: {{ shop_url }}

Don't want these emails? Unsubscribe: {{ unsubscribe_url }}
"""
DEFAULT_HTML = """<p>Hello {{ first_name|default:'there' }},</p>
<p>It has been a while since your last order, and we would love to see you again.</p>
{% if incentive %}<p style="font-size:18px;font-weight:bold;">{{ incentive }}{% if incentive_expires_on %}
<span style="font-weight:normal;font-size:14px;">(until {{ incentive_expires_on }})</span>{% endif %}</p>{% endif %}
<p>You have <strong>{{ balance }} points</strong>{% if tier %} and you are a
<strong>{{ tier }}</strong> member{% endif %}.</p>
<p><a href="{{ shop_url }}"
 style="background:#1f5c3a;color:#ffffff;padding:10px 18px;text-decoration:none;border-radius:4px;">
Visit the shop</a></p>
"""


def default_segments() -> list[str]:
    return [Segment.AT_RISK.value]


class Campaign(models.Model):
    """Emails members of chosen segments, with an incentive, a cooldown and a control group."""

    class Incentive(models.TextChoices):
        NONE = "none", _("No incentive")
        POINTS = "points", _("Bonus points, credited when the email is sent")
        REWARD = "reward", _("A reward code, issued when the email is sent")

    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(_("name"), max_length=100)
    segments = models.JSONField(
        _("target segments"), default=default_segments, help_text=_("Members in any of these segments are eligible.")
    )
    incentive = models.CharField(_("incentive"), max_length=8, choices=Incentive.choices, default=Incentive.POINTS)
    incentive_points = models.PositiveIntegerField(_("bonus points"), default=0)
    incentive_reward = models.ForeignKey(
        "loyalty.Reward",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("reward"),
    )
    incentive_valid_days = models.PositiveIntegerField(
        _("incentive valid for (days)"),
        default=30,
        validators=[MinValueValidator(1)],
        help_text=_("Bonus points expire, and reward codes run out, this many days after the email."),
    )
    subject = models.CharField(_("subject"), max_length=200, default=DEFAULT_SUBJECT)
    text_template = models.TextField(_("text version"), default=DEFAULT_TEXT)
    html_template = models.TextField(_("HTML version"), blank=True, default=DEFAULT_HTML)
    language = models.CharField(_("language"), max_length=10, blank=True, help_text=_("Empty: the site default."))
    cooldown_days = models.PositiveIntegerField(
        _("cooldown (days)"),
        default=30,
        help_text=_("No member gets more than one re-engagement email in this many days, across all campaigns."),
    )
    send_after = models.TimeField(_("send from"), null=True, blank=True, help_text=_("Local time. Empty: any time."))
    send_before = models.TimeField(_("send until"), null=True, blank=True)
    control_percent = models.PositiveSmallIntegerField(
        _("control group (%)"),
        default=10,
        validators=[MaxValueValidator(50)],
        help_text=_("Held out at random (the same members every run) so the report can show the uplift."),
    )
    attribution_days = models.PositiveIntegerField(
        _("attribution window (days)"), default=14, validators=[MinValueValidator(1)]
    )
    is_active = models.BooleanField(_("active"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_run_at = models.DateTimeField(_("last run"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["program", "name"]
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        constraints = [
            check_constraint(condition=Q(control_percent__lte=50), name="loyalty_campaign_control_at_most_50"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Subject, text and HTML must compile in the staff template sandbox and use only its
        documented variables (``loyalty.staff_templates``)."""
        from django.core.exceptions import ValidationError
        from django.template import TemplateSyntaxError

        from ..staff_templates import CAMPAIGN_VARIABLES, staff_template_validate

        errors = {}
        for field in ("subject", "text_template", "html_template"):
            source = getattr(self, field) or ""
            if not source.strip():
                continue
            try:
                staff_template_validate(source, variables=CAMPAIGN_VARIABLES)
            except TemplateSyntaxError as exc:
                errors[field] = _("This template does not compile: %(error)s") % {"error": exc}
        if errors:
            raise ValidationError(errors)


class Message(models.Model):
    """One campaign email to one member in one cycle; control members get a row and no email."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")
        EXPIRED = "expired", _("Expired (not sent in time)")
        CONTROL = "control", _("Control group (not sent)")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="messages")
    program = models.ForeignKey("loyalty.Program", on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey("loyalty.Member", on_delete=models.CASCADE, related_name="messages")
    cycle = models.CharField(_("cycle"), max_length=20, help_text=_("The run's day: one message per member per cycle."))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.QUEUED)
    segment = models.CharField(_("segment when selected"), max_length=20, blank=True)
    to_email = models.EmailField(_("sent to"), blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("selected at"), db_index=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    opened_at = models.DateTimeField(_("opened at"), null=True, blank=True)
    clicked_at = models.DateTimeField(_("clicked at"), null=True, blank=True)
    unsubscribed_at = models.DateTimeField(_("unsubscribed at"), null=True, blank=True)
    converted_at = models.DateTimeField(_("converted at"), null=True, blank=True)
    conversion_purchase = models.ForeignKey(
        "loyalty.Purchase", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revenue = models.DecimalField(_("revenue"), default=Decimal("0.00"), **MONEY)
    incentive_reference = models.CharField(_("incentive"), max_length=100, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "member", "cycle"], name="loyalty_message_once_per_cycle"),
        ]
        indexes = [
            models.Index(fields=["member", "-created_at"], name="loyalty_msg_member_recent"),
            models.Index(fields=["campaign", "status"], name="loyalty_msg_campaign_status"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} -> {self.member_id} ({self.cycle})"
