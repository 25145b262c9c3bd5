"""What loyalty does with survey answers beyond storing them: detractor alerts for staff.

``response_saved`` is called by the survey service (``loyalty.services.surveys``) inside its
transaction, after a response was created or edited. When the answer is a detractor's
(NPS 0-6 or CSAT 1-2) and the member is a high-value customer, staff are told once per
response: the ``member_detractor`` signal and, when the survey has an alert address, an
email. The signal is sent after the commit; the email is an outbox row of the same
transaction (``services.outbox``).

"High value" is the member's net spend (``CustomerHealth.total_spent`` from the last health
refresh, or the sum of their counted purchases when they have not been scored yet) against,
in order: the survey's ``alert_min_spend``; the health settings' ``high_value_spend``; else
the programme's top fifth by spend, i.e. the refresh's M score 5 (read from the member's
``CustomerHealth.m_score``; a member not scored yet is compared with the lower bound of M = 5
in the latest refresh's quintile breakpoints, and with no refresh at all nobody is high value).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from urllib.parse import urljoin

from django.conf import settings
from django.db.models import DecimalField, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import override

from .. import signals
from ..conf import loyalty_settings
from ..models import CustomerHealth, HealthRun, HealthSettings, Member, Purchase, SurveyResponse
from .outbox import STAFF_ALERT, email_queue

logger = logging.getLogger("loyalty.feedback")

COUNTED_STATUSES = Purchase.KEPT_STATUSES
ZERO = Decimal("0.00")


def member_total_spent(*, member: Member) -> Decimal:
    """Net spend as of the last health refresh, or summed from purchases when not scored yet (one query)."""
    health = CustomerHealth.objects.filter(member=member).only("total_spent").first()
    if health is not None:
        return health.total_spent
    total = Purchase.objects.filter(member=member, status__in=COUNTED_STATUSES).aggregate(
        total=Coalesce(
            Sum("amount", output_field=DecimalField(max_digits=14, decimal_places=2))
            - Sum("refunded_amount", output_field=DecimalField(max_digits=14, decimal_places=2)),
            ZERO,
            output_field=DecimalField(max_digits=14, decimal_places=2),
        )
    )["total"]
    return total or ZERO


def is_high_value(*, member: Member, survey, spent: Decimal) -> bool:
    """See the module docstring for the order of the thresholds."""
    if survey.alert_min_spend is not None:
        return spent >= survey.alert_min_spend
    policy = HealthSettings.objects.filter(program_id=member.program_id).only("high_value_spend").first()
    if policy is not None and policy.high_value_spend is not None:
        return spent >= policy.high_value_spend
    # The refresh's own rule: the top fifth by spend (M = 5).
    health = CustomerHealth.objects.filter(member=member).only("m_score").first()
    if health is not None:
        return health.m_score == 5
    run = HealthRun.objects.filter(program_id=member.program_id).only("cutpoints").order_by("-started_at").first()
    bound = ((run.cutpoints or {}).get("m") or {}).get("5") if run is not None else None
    return bound is not None and float(spent) >= float(bound)


def member_admin_url(member: Member) -> str:
    """An absolute link to the member's admin page, on ``LOYALTY["SITE_URL"]``."""
    return urljoin(loyalty_settings.SITE_URL, reverse("admin:loyalty_member_change", args=[member.pk]))


def _score_text(response: SurveyResponse) -> str:
    parts = []
    if response.nps is not None:
        parts.append(f"NPS {response.nps}")
    if response.csat is not None:
        parts.append(f"CSAT {response.csat}")
    return ", ".join(parts) or "–"


def detractor_alert_email(*, response: SurveyResponse, spent: Decimal) -> tuple[str, str]:
    """Subject and plain-text body of the staff alert (in the site's default language)."""
    member, purchase = response.member, response.purchase
    user = member.user
    name = user.get_full_name() or user.get_username()
    email = getattr(user, user.get_email_field_name(), "") or ""
    currency = member.program.currency
    subject = _("Unhappy high-value customer: %(name)s <%(email)s> (%(scores)s)") % {
        "name": name,
        "email": email,
        "scores": _score_text(response),
    }
    lines = [
        _('%(name)s answered the survey "%(survey)s" as a detractor.') % {"name": name, "survey": response.survey},
        "",
        _("Scores: %(scores)s") % {"scores": _score_text(response)},
        _("Order: %(reference)s (%(amount)s %(currency)s)")
        % {"reference": purchase.order_reference, "amount": purchase.amount, "currency": purchase.currency},
        _("Total spent: %(spent)s %(currency)s") % {"spent": spent, "currency": currency},
        _("Answered at: %(when)s") % {"when": f"{timezone.localtime(response.submitted_at):%Y-%m-%d %H:%M}"},
        "",
        _("Comment:"),
        response.comment or _("(no comment)"),
        "",
        _("Member page: %(url)s") % {"url": member_admin_url(member)},
    ]
    return subject, "\n".join(str(line) for line in lines)


def response_saved(*, response: SurveyResponse) -> bool:
    """Alert staff about a high-value detractor, once per response. Returns whether an alert was queued.

    Called inside the survey service's transaction after a response is created or edited: an
    edit that turns an answer into a detractor's alerts then; a response never alerts twice.
    """
    if not response.is_detractor or response.alerted_at is not None:
        return False
    member = response.member
    survey = response.survey
    spent = member_total_spent(member=member)
    if not is_high_value(member=member, survey=survey, spent=spent):
        return False
    now = timezone.now()
    # Claim the alert in the database: a concurrent edit of the same response cannot alert again.
    claimed = SurveyResponse.objects.filter(pk=response.pk, alerted_at__isnull=True).update(alerted_at=now)
    if not claimed:
        return False
    response.alerted_at = now
    signals.send_on_commit(signals.member_detractor, sender=Member, member=member, response=response)
    if survey.alert_email:
        with override(settings.LANGUAGE_CODE):  # staff read the site's language, not the customer's
            subject, body = detractor_alert_email(response=response, spent=spent)
        email_queue(
            key=f"detractor-alert:response:{response.pk}",
            kind=STAFF_ALERT,
            member=member,
            to_email=survey.alert_email,
            context={"subject": " ".join(str(subject).split()), "body": body},
        )
    return True
