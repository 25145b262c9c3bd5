"""Previews and test sends for the admin: nothing here writes (no Message, no incentive, no
tracking); a test email goes to staff only."""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.template import TemplateSyntaxError
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from ...exceptions import LoyaltyError
from ...models import Campaign, Member
from ..notifications import email_message
from .rendering import RenderedEmail, campaign_language, campaign_render
from .selection import _user_has_field
from .sending import NO_INCENTIVE, IssuedIncentive, _code_sentence, _points_sentence

logger = logging.getLogger("loyalty.campaigns")

Incentive = Campaign.Incentive


# --- previews and test sends (admin) -----------------------------------------------------------
# Nothing here writes: no Message, no incentive, no tracking. A test email goes to staff only.

PREVIEW_CODE = "PREVIEW-CODE"
TEST_SUBJECT_PREFIX = "[TEST] "
SAMPLE_FIRST_NAME = "Alex"
SAMPLE_EMAIL = "alex@example.com"
SAMPLE_BALANCE = 1200


class CampaignTemplateError(LoyaltyError):
    """A campaign's template does not compile, or fails while rendering."""

    code = "campaign_template_error"


def campaign_sample_member(*, campaign: Campaign) -> Member:
    """A made-up member of the campaign's programme for previews, never saved."""
    user_model = get_user_model()
    user = user_model()
    setattr(user, user_model.get_email_field_name(), SAMPLE_EMAIL)
    if _user_has_field("first_name"):
        user.first_name = SAMPLE_FIRST_NAME
    if _user_has_field(user_model.USERNAME_FIELD) and user_model.USERNAME_FIELD != user_model.get_email_field_name():
        setattr(user, user_model.USERNAME_FIELD, "sample")
    return Member(program=campaign.program, user=user, balance=SAMPLE_BALANCE)


def campaign_preview_member(*, campaign: Campaign) -> Member:
    """Whom a preview shows by default: a member in the campaign's target segments, else any
    member of its programme, else :func:`campaign_sample_member` (check ``member.pk``)."""
    members = Member.objects.filter(program_id=campaign.program_id).select_related("program", "user", "tier")
    segments = [str(segment) for segment in campaign.segments or []]
    return (
        members.filter(health__segment__in=segments).order_by("pk").first()
        or members.order_by("pk").first()
        or campaign_sample_member(campaign=campaign)
    )


def incentive_preview(*, campaign: Campaign, now: datetime) -> IssuedIncentive:
    """The incentive sentence the email would carry, issuing nothing: the campaign's bonus
    points, or its reward with the code ``PREVIEW-CODE``. Call it in the campaign's language."""
    expires_at = now + timedelta(days=campaign.incentive_valid_days)
    if campaign.incentive == Incentive.POINTS and campaign.incentive_points > 0:
        return IssuedIncentive(_points_sentence(campaign.incentive_points), expires_at, "")
    if campaign.incentive == Incentive.REWARD and campaign.incentive_reward is not None:
        return IssuedIncentive(_code_sentence(PREVIEW_CODE, campaign.incentive_reward), expires_at, "")
    return NO_INCENTIVE


def campaign_preview(*, campaign: Campaign, member: Member, now: datetime | None = None) -> RenderedEmail:
    """The campaign's email for ``member`` as it would be sent ``now``, untracked (see
    :func:`campaign_render`), with a sample incentive. The balance is the member's balance plus
    the bonus points, as the real email (which credits them first) would show it. Writes nothing.
    Raises :class:`CampaignTemplateError` with the template engine's message."""
    now = now or timezone.now()
    with translation.override(campaign_language(campaign)):
        incentive = incentive_preview(campaign=campaign, now=now)
    if incentive.text and campaign.incentive == Incentive.POINTS:
        member = copy.copy(member)  # the caller's member keeps its balance
        member.balance += campaign.incentive_points
    try:
        return campaign_render(
            campaign=campaign,
            member=member,
            incentive_text=incentive.text,
            incentive_expires_at=incentive.expires_at,
        )
    except TemplateSyntaxError as exc:
        raise CampaignTemplateError(_("The campaign's template does not compile: %(error)s") % {"error": exc}) from exc
    except Exception as exc:  # a filter or tag failing at render time: the preview is where to find out
        logger.info("Campaign %s: preview failed", campaign.pk, exc_info=True)
        raise CampaignTemplateError(
            _("The campaign's template failed while rendering: %(error)s") % {"error": f"{type(exc).__name__}: {exc}"}
        ) from exc


def campaign_send_test(*, campaign: Campaign, member: Member, to: str, now: datetime | None = None) -> RenderedEmail:
    """Send :func:`campaign_preview` for ``member`` to ``to`` (the staff user's own address),
    the subject prefixed ``[TEST] ``. No Message, no incentive, no tracking. Raises
    :class:`CampaignTemplateError`, ``LoyaltyError`` (code ``no_email``) without an address; the
    mail backend's errors (``smtplib.SMTPException``, ``OSError``) propagate."""
    to = (to or "").strip()
    if not to:
        raise LoyaltyError(_("There is no address to send the test to."), code="no_email")
    rendered = campaign_preview(campaign=campaign, member=member, now=now)
    email_message(rendered, to=to, subject=f"{TEST_SUBJECT_PREFIX}{rendered.subject}").send()
    logger.info("Campaign %s: test email for member %s sent to %s", campaign.pk, member.pk, to)
    return rendered
