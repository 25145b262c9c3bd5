"""What staff do with emails in the admin: retry, cancel, preview."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ...exceptions import LoyaltyError
from ...models import Message, OutboundEmail, SurveyInvitation
from .prepare import (
    Fail,
    Prepared,
    Skip,
    _load,
    _member_address,
    _prepare_member_email,
    _prepare_survey,
    _staff_alert_email,
)
from .queue import CAMPAIGN, STAFF_ALERT, SURVEY, outbox_nudge_on_commit

Status = OutboundEmail.Status


# --- staff actions -----------------------------------------------------------------------------

RETRYABLE = (Status.FAILED, Status.EXPIRED, Status.CANCELLED, Status.SKIPPED)


def emails_retry(*, ids: list[int], now: datetime | None = None) -> int:
    """Queue failed, expired, skipped or cancelled emails again (consent and the rest are
    checked again when they are sent). Returns how many were queued."""
    now = now or timezone.now()
    with transaction.atomic():
        rows = OutboundEmail.objects.filter(pk__in=ids, status__in=RETRYABLE)
        chosen = list(rows.values_list("pk", flat=True))
        OutboundEmail.objects.filter(pk__in=chosen).update(
            status=Status.QUEUED, attempts=0, due_at=now, created_at=now, last_error="", lease_until=None
        )
        Message.objects.filter(email__pk__in=chosen).update(status=Message.Status.QUEUED, last_error="")
        SurveyInvitation.objects.filter(email__pk__in=chosen).update(
            status=SurveyInvitation.Status.QUEUED, last_error=""
        )
        if chosen:
            outbox_nudge_on_commit()
    return len(chosen)


def emails_cancel(*, ids: list[int], by=None) -> int:
    """Stop queued emails (a row being sent right now is left to finish). Returns how many."""
    who = getattr(by, "get_username", lambda: "")()
    reason = _("Cancelled by %(user)s.") % {"user": who} if who else _("Cancelled by staff.")
    with transaction.atomic():
        chosen = list(
            OutboundEmail.objects.select_for_update(skip_locked=True)
            .filter(pk__in=ids, status=Status.QUEUED)
            .values_list("pk", flat=True)
        )
        OutboundEmail.objects.filter(pk__in=chosen).update(status=Status.CANCELLED, last_error=reason)
        Message.objects.filter(email__pk__in=chosen).update(status=Message.Status.SKIPPED, last_error=reason)
        SurveyInvitation.objects.filter(email__pk__in=chosen).update(
            status=SurveyInvitation.Status.SKIPPED, last_error=reason
        )
    return len(chosen)


@dataclass(frozen=True)
class EmailPreview:
    subject: str
    text: str
    html: str | None
    to: str


def email_preview(*, email: OutboundEmail) -> EmailPreview:
    """The email as it would be sent now, without sending or issuing anything (admin). Raises
    :class:`LoyaltyError` when there is nothing to show (the member is gone)."""
    from ..campaigns import campaign_preview

    row = _load([email.pk])[0]
    if row.kind == CAMPAIGN:
        if row.message is None or row.member is None:
            raise LoyaltyError(_("The member or the campaign message no longer exists."), code="email_not_renderable")
        rendered = campaign_preview(campaign=row.message.campaign, member=row.member)
        return EmailPreview(rendered.subject, rendered.text, rendered.html, _member_address(row.member))
    prepared = Prepared(row=row)
    try:
        if row.kind == STAFF_ALERT:
            prepared.email = _staff_alert_email(row)
        elif row.kind == SURVEY:
            _prepare_survey(prepared)
        else:
            _prepare_member_email(prepared)
    except (Skip, Fail) as exc:
        raise LoyaltyError(str(exc), code="email_not_renderable") from exc
    email_ = prepared.email
    html = next((content for content, mimetype in email_.alternatives if mimetype == "text/html"), None)
    return EmailPreview(str(email_.subject), email_.body, html, email_.to[0])
