"""What the outbox calls to send a campaign email: the checks made at send time and the
incentive the email carries (bonus points credited with the "sent" mark, a reward code issued
before sending); ``message_send`` sends one message now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ...exceptions import LoyaltyError
from ...models import Campaign, Member, Message, PointsEntry, Reward
from ..ledger import Credit
from ..rewards import reward_redeem
from .rendering import campaign_language, in_language
from .selection import marketing_unreachable_reason

Incentive = Campaign.Incentive


# --- sending (through the outbox: services.outbox) -------------------------------------------


@dataclass(frozen=True)
class IssuedIncentive:
    text: str  # the sentence the email shows ("We have added 200 bonus points to your account")
    expires_at: datetime | None
    reference: str  # stored on the message: the ledger entry or the reward code
    bonus: Credit | None = None  # bonus points the outbox credits together with the "sent" mark
    redemption_id: int | None = None  # a reward code issued for this email (cancelled if it never goes)


NO_INCENTIVE = IssuedIncentive("", None, "")


def campaign_skip_reason(message: Message, member: Member) -> str:
    """Why the message must not go (any more), or ``""``; checked when it is sent."""
    campaign = message.campaign
    if not campaign.is_active:
        return "The campaign was switched off before the email was sent."
    if not campaign.program.is_active:
        return "The programme is switched off."
    return marketing_unreachable_reason(member)


def _reward_phrase(reward: Reward) -> str:
    currency = reward.program.currency
    value = reward.value.normalize() if reward.kind == Reward.Kind.PERCENT else reward.value
    if reward.kind == Reward.Kind.FIXED:
        return _("%(value)s %(currency)s off") % {"value": value, "currency": currency}
    if reward.kind == Reward.Kind.PERCENT:
        return _("%(value)s%% off") % {"value": f"{value:f}"}
    if reward.kind == Reward.Kind.FREE_SHIPPING:
        return _("free shipping")
    return reward.name


def _points_sentence(points: int) -> str:
    return ngettext(
        "We have added %(points)d bonus point to your account",
        "We have added %(points)d bonus points to your account",
        points,
    ) % {"points": points}


def _code_sentence(code: str, reward: Reward) -> str:
    return _("Your code %(code)s: %(offer)s") % {"code": code, "offer": _reward_phrase(reward)}


RESEND_MARK = "resend-of:"


def _incentive_owner(message: Message) -> int:
    """The message whose incentive this one carries: itself, or for a resend the original."""
    reference = message.incentive_reference or ""
    if reference.startswith(RESEND_MARK) and reference[len(RESEND_MARK) :].isdigit():
        return int(reference[len(RESEND_MARK) :])
    return message.pk


def bonus_key(message: Message) -> str:
    """The ledger key of a message's bonus points (a resend shares the original's)."""
    return f"campaign:{_incentive_owner(message)}:bonus"


def message_incentive(
    *, message: Message, member: Member, now: datetime, existing: dict[str, PointsEntry] | None = None
) -> IssuedIncentive:
    """The incentive the email carries, in the campaign's language.

    Bonus points are not credited here: the outbox credits them with the "sent" mark (a
    retried or resent email finds them in ``existing`` and shows the same points). A reward code
    must be in the email, so it is issued now, keyed on the message (a retry or a resend gets
    the same code); the outbox cancels it if the email finally fails."""
    campaign = message.campaign
    owner = _incentive_owner(message)
    with in_language(campaign_language(campaign)):
        if campaign.incentive == Incentive.POINTS and campaign.incentive_points > 0:
            key = bonus_key(message)
            entry = (existing or {}).get(key)
            if entry is not None:
                reference = f"points:{entry.points}:entry:{entry.pk}"
                return IssuedIncentive(_points_sentence(entry.points), entry.expires_at, reference)
            expires_at = now + timedelta(days=campaign.incentive_valid_days)
            credit = Credit(
                member_id=member.pk,
                program_id=member.program_id,
                points=campaign.incentive_points,
                idempotency_key=key,
                kind=PointsEntry.Kind.BONUS,
                reference=f"campaign:{campaign.pk}",
                description=f"Campaign “{campaign.name}”"[:255],
                expires_at=expires_at,
            )
            text = _points_sentence(campaign.incentive_points)
            return IssuedIncentive(text, expires_at, f"points:{campaign.incentive_points}", bonus=credit)
        if campaign.incentive == Incentive.REWARD:
            if campaign.incentive_reward is None:
                raise LoyaltyError(_("The campaign has no reward to give."), code="campaign_without_reward")
            redemption = reward_redeem(
                member=member,
                reward=campaign.incentive_reward,
                idempotency_key=f"campaign:{owner}",
                free=True,
                at=now,
                valid_days=campaign.incentive_valid_days,
                notify=False,
            )
            text = _code_sentence(redemption.code, redemption.reward)
            return IssuedIncentive(
                text,
                redemption.expires_at,
                f"code:{redemption.code}"[:100],
                redemption_id=redemption.pk if owner == message.pk else None,
            )
    return NO_INCENTIVE


def message_send(*, message_id: int, now: datetime | None = None) -> str:
    """Send one queued message now through the outbox (what the workers do in batches);
    returns the message's status afterwards (``sent``, ``skipped``, ``failed``, or ``queued``
    when a mail error left it for a later attempt), ``missing`` or ``not_queued``."""
    from ..outbox import outbox_send_now

    return outbox_send_now(model=Message, pk=message_id, now=now)
