"""Preparing a claimed row for sending: the email rendered per kind (member notification,
campaign message, survey invitation, staff alert), or the reason it is skipped or failed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import TemplateSyntaxError

from ...exceptions import LoyaltyError
from ...models import Member, OutboundEmail, PointsEntry
from .queue import CAMPAIGN, STAFF_ALERT, SURVEY

logger = logging.getLogger("loyalty.outbox")

Status = OutboundEmail.Status


# --- preparing ---------------------------------------------------------------------------------


class Skip(Exception):
    """Nothing to send any more (the reason is kept on the row)."""


class Fail(Exception):
    """Cannot be sent, and trying again will not help (a template that fails, no incentive)."""


@dataclass
class Prepared:
    row: OutboundEmail
    email: EmailMultiAlternatives | None = None
    outcome: str = ""  # "" (to send), "skipped", "failed" (for good)
    reason: str = ""
    bonus: Any = None  # a campaign's bonus points to credit with the sent mark (ledger.Credit)
    incentive_reference: str = ""
    redemption_id: int | None = None  # a reward code issued for this email (cancelled if it fails)
    error: str = ""


@dataclass
class Batch:
    """Per-batch caches, so 500 emails of one campaign compile its templates once."""

    now: datetime
    existing_bonus: dict[str, PointsEntry] = field(default_factory=dict)


def _member_address(member: Member) -> str:
    user = member.user
    return (getattr(user, user.get_email_field_name(), "") or "").strip()


def _prepare(row: OutboundEmail, batch: Batch) -> Prepared:
    prepared = Prepared(row=row)
    try:
        if row.kind == STAFF_ALERT:
            prepared.email = _staff_alert_email(row)
        elif row.kind == CAMPAIGN:
            _prepare_campaign(prepared, batch)
        elif row.kind == SURVEY:
            _prepare_survey(prepared)
        else:
            _prepare_member_email(prepared)
    except Skip as exc:
        prepared.outcome, prepared.reason = Status.SKIPPED, str(exc)
    except Fail as exc:
        prepared.outcome, prepared.reason = Status.FAILED, str(exc)
    except Exception as exc:  # a template failing while rendering: the row ends, the others go on
        logger.exception("Email %s (%s) could not be prepared.", row.pk, row.key)
        prepared.outcome, prepared.reason = Status.FAILED, f"Could not be rendered: {type(exc).__name__}: {exc}"
    return prepared


def _staff_alert_email(row: OutboundEmail) -> EmailMultiAlternatives:
    if not row.to_email:
        raise Skip("There is no staff address to send the alert to.")
    return EmailMultiAlternatives(
        subject=str(row.context.get("subject", ""))[:255],
        body=str(row.context.get("body", "")),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[row.to_email],
    )


def _member_or_skip(row: OutboundEmail) -> Member:
    member = row.member
    if member is None:
        raise Skip("The member no longer exists.")
    if not _member_address(member):
        raise Skip("The customer has no email address.")
    return member


def _prepare_member_email(prepared: Prepared) -> None:
    from ..notifications import email_message, is_marketing, member_email_render

    row = prepared.row
    member = _member_or_skip(row)
    if is_marketing(row.kind):
        from ..campaigns import marketing_unreachable_reason

        if reason := marketing_unreachable_reason(member):
            raise Skip(reason)
    rendered = member_email_render(member=member, template=row.kind, context=row.context)
    prepared.email = email_message(rendered, to=_member_address(member))


def _prepare_survey(prepared: Prepared) -> None:
    from ..notifications import email_message
    from ..surveys import invitation_render, invitation_skip_reason

    row = prepared.row
    invitation = row.invitation
    if invitation is None:
        raise Skip("The survey invitation no longer exists.")
    member = _member_or_skip(row)
    if reason := invitation_skip_reason(invitation, member):
        raise Skip(reason)
    rendered = invitation_render(invitation=invitation, member=member)
    prepared.email = email_message(rendered, to=_member_address(member))


def _prepare_campaign(prepared: Prepared, batch: Batch) -> None:
    from ..campaigns import (
        campaign_language,
        campaign_skip_reason,
        campaign_templates,
        in_language,
        message_email,
        message_incentive,
    )

    row = prepared.row
    member = _member_or_skip(row)
    message = row.message
    if message is None:
        raise Skip("The campaign message no longer exists.")
    if reason := campaign_skip_reason(message, member):
        raise Skip(reason)
    try:
        campaign_templates(message.campaign)  # before any incentive is issued
    except TemplateSyntaxError as exc:
        raise Fail(f"The campaign's template does not compile: {exc}") from exc
    with in_language(campaign_language(message.campaign)):
        try:
            incentive = message_incentive(message=message, member=member, now=batch.now, existing=batch.existing_bonus)
        except LoyaltyError as exc:
            raise Fail(f"Incentive not issued ({exc.code}): {exc.message}") from exc
        prepared.bonus, prepared.redemption_id = incentive.bonus, incentive.redemption_id
        prepared.incentive_reference = incentive.reference
        if incentive.bonus is not None:  # the email shows the balance with the bonus, as it will be
            member.balance += incentive.bonus.points
        prepared.email = message_email(message=message, member=member, incentive=incentive)


def _load(ids: list[int]) -> list[OutboundEmail]:
    return list(
        OutboundEmail.objects.filter(pk__in=ids)
        .select_related(
            "member__user",
            "member__program",
            "member__tier",
            "message__campaign__program",
            "message__campaign__incentive_reward__program",
            "invitation__survey__program",
            "invitation__purchase",
        )
        .order_by("pk")
    )
