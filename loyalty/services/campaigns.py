"""Re-engagement campaigns: email members of chosen segments, with an incentive, and measure it.

- ``campaign_run`` selects in SQL and writes one ``Message`` per member and cycle (the run's
  local day); the unique constraint makes a rerun on the same day add nothing. A stable hash
  holds a share of members back as the control group: they get a row and no email.
  Each queued message gets its email in the outbox (``services.outbox``) in the same
  transaction; the outbox sends it, issuing the incentive (keyed on the message) with it.
- Tracking (open pixel, click redirect), one-click unsubscribe and purchase attribution
  write timestamps once; ``selectors.campaign_report`` reads them back against the control.
- ``campaign_render`` is the one place an email is rendered; without a message it tracks
  nothing, which is what the admin's ``campaign_preview`` and ``campaign_send_test`` use.

Lock order is member, then message (as in order processing, which attributes purchases).
"""

from __future__ import annotations

import copy
import hashlib
import html
import logging
import re
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import FieldDoesNotExist
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Case, Exists, F, OuterRef, QuerySet, When
from django.template import Context, Template, TemplateSyntaxError
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse
from django.utils import timezone, translation
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..conf import loyalty_settings
from ..exceptions import LoyaltyError
from ..models import Campaign, Member, Message, PointsEntry, Program, Purchase, Reward
from .ledger import Credit
from .notifications import email_message, site_url
from .outbox import CAMPAIGN as CAMPAIGN_EMAIL
from .outbox import email_queue, emails_queue, outbox_nudge_on_commit, outbox_row
from .rewards import redeem
from .staff_templates import staff_template_compile

logger = logging.getLogger("loyalty.campaigns")

Status = Message.Status
Incentive = Campaign.Incentive
CHUNK_SIZE = 1000
#: Messages a purchase is matched against (newest first): more than any member has open windows.
ATTRIBUTION_CANDIDATES = 20
LAYOUT_TEMPLATE = "loyalty/emails/campaign_layout.html"
UNSUBSCRIBE_SALT = "loyalty.campaigns.unsubscribe"
OPEN_SALT = "loyalty.campaigns.open"
CLICK_SALT = "loyalty.campaigns.click"
SCHEDULE_TASK = "loyalty.tasks.run_campaign"


# --- selecting and queueing ----------------------------------------------------------------


def campaign_cycle(now: datetime) -> str:
    """A run's cycle: its local date, so each member gets at most one message a day per campaign."""
    return timezone.localdate(now).isoformat()


def in_control_group(*, campaign_id: int, member_id: int, percent: int) -> bool:
    """Stable across runs and processes (``hash()`` is salted per process; sha256 is not)."""
    digest = hashlib.sha256(f"loyalty-control:{campaign_id}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent


def _user_has_field(name: str) -> bool:
    try:
        get_user_model()._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def marketing_reachable(members: QuerySet[Member]) -> QuerySet[Member]:
    """``members`` narrowed to those a marketing email may go to: consent (which erasure
    withdraws), an address, an active account (when the user model has ``is_active``).
    Campaigns and post-purchase surveys select through it."""
    email = get_user_model().get_email_field_name()
    members = (
        members.filter(marketing_consent=True)
        .exclude(**{f"user__{email}": ""})
        .exclude(**{f"user__{email}__isnull": True})
    )
    if _user_has_field("is_active"):
        members = members.filter(user__is_active=True)
    return members


def marketing_unreachable_reason(member: Member) -> str:
    """Why a marketing email may no longer go to ``member`` (checked again at send time, since
    consent can change after selection), or ``""``: :func:`marketing_reachable` for one member."""
    user = member.user
    if not member.marketing_consent:
        return "The member has withdrawn marketing consent."
    if not getattr(user, "is_active", True):
        return "The customer's account is deactivated."
    if not (getattr(user, user.get_email_field_name(), "") or "").strip():
        return "The customer has no email address."
    return ""


def campaign_eligible_members(*, campaign: Campaign, now: datetime) -> QuerySet[Member]:
    """Who the campaign would queue now (one query): segment, consent, an address, no recent
    re-engagement email from any campaign of the programme, none from this one this cycle."""
    cooldown_from = now - timedelta(days=campaign.cooldown_days)
    recent = Message.objects.filter(
        member_id=OuterRef("pk"), status__in=(Status.QUEUED, Status.SENT), created_at__gt=cooldown_from
    )
    this_cycle = Message.objects.filter(member_id=OuterRef("pk"), campaign_id=campaign.pk, cycle=campaign_cycle(now))
    members = Member.objects.filter(
        program_id=campaign.program_id, health__segment__in=[str(s) for s in campaign.segments or []]
    ).filter(~Exists(recent), ~Exists(this_cycle))
    return marketing_reachable(members)


def campaign_run(*, campaign: Campaign, now: datetime | None = None) -> dict[str, int]:
    """Queue this cycle's messages and, after commit, their send tasks; returns the counts.

    ``eligible`` = members selected by this run, ``queued`` + ``control`` = eligible. A
    switched-off campaign or programme runs nothing. Runs of one programme take turns (a
    row lock on the programme), so the cooldown across its campaigns holds under concurrency.
    """
    now = now or timezone.now()
    counts = {"eligible": 0, "queued": 0, "control": 0}
    with transaction.atomic():
        program = Program.objects.select_for_update().filter(pk=campaign.program_id).first()
        current = Campaign.objects.filter(pk=campaign.pk).first()
        if program is None or current is None or not program.is_active or not current.is_active:
            return counts
        cycle = campaign_cycle(now)
        due_at = campaign_next_send_at(campaign=current, now=now) or now
        selection = campaign_eligible_members(campaign=current, now=now).order_by("pk")
        last_id = 0
        while True:
            chunk = list(selection.filter(pk__gt=last_id).values_list("pk", "health__segment")[:CHUNK_SIZE])
            if not chunk:
                break
            rows = []
            for member_id, segment in chunk:
                control = in_control_group(campaign_id=current.pk, member_id=member_id, percent=current.control_percent)
                counts["control" if control else "queued"] += 1
                rows.append(
                    Message(
                        campaign_id=current.pk,
                        program_id=current.program_id,
                        member_id=member_id,
                        cycle=cycle,
                        status=Status.CONTROL if control else Status.QUEUED,
                        segment=segment or "",
                        created_at=now,
                    )
                )
            Message.objects.bulk_create(rows, ignore_conflicts=True)
            _queue_emails(campaign=current, cycle=cycle, member_ids=[m for m, _s in chunk], now=now, due_at=due_at)
            counts["eligible"] += len(chunk)
            last_id = chunk[-1][0]
        Campaign.objects.filter(pk=current.pk).update(last_run_at=now)
        if counts["queued"]:
            outbox_nudge_on_commit(due_at=due_at)
    campaign.last_run_at = now
    logger.info("Campaign %s, cycle %s: %s", campaign.pk, cycle, counts)
    return counts


def campaigns_run_active(*, now: datetime | None = None) -> dict[int, dict[str, int]]:
    """Run every active campaign of an active programme (for shops without per-campaign schedules)."""
    results: dict[int, dict[str, int]] = {}
    for campaign in Campaign.objects.filter(is_active=True, program__is_active=True).order_by("pk"):
        try:
            results[campaign.pk] = campaign_run(campaign=campaign, now=now)
        except Exception:  # one broken campaign must not stop the others; the next run tries again
            logger.exception("Campaign %s could not be run.", campaign.pk)
    return results


def campaign_next_send_at(*, campaign: Campaign, now: datetime) -> datetime | None:
    """When the send window next opens, or ``None`` if ``now`` is inside it (or there is none).

    The window is ``send_after`` (inclusive) to ``send_before`` (exclusive) in local time;
    ``send_after`` later than ``send_before`` wraps midnight (22:00 to 06:00).
    """
    after, before = campaign.send_after, campaign.send_before
    if (after is None and before is None) or after == before:
        return None
    tz = timezone.get_current_timezone()
    local = timezone.localtime(now, tz)
    moment, start = local.time(), after or time(0)
    if before is None:
        inside = moment >= start
    elif start < before:
        inside = start <= moment < before
    else:
        inside = moment >= start or moment < before
    if inside:
        return None
    day = local.date() if moment < start else local.date() + timedelta(days=1)
    return timezone.make_aware(datetime.combine(day, start), tz)


def campaign_email_key(*, campaign_id: int, member_id: int, cycle: str) -> str:
    return f"campaign:{campaign_id}:{member_id}:{cycle}"


def _queue_emails(*, campaign: Campaign, cycle: str, member_ids: list[int], now: datetime, due_at: datetime) -> None:
    """One outbox row per queued message of these members in this cycle (the caller's
    transaction; a rerun finds the keys taken and adds nothing)."""
    queued = Message.objects.filter(
        campaign_id=campaign.pk, cycle=cycle, member_id__in=member_ids, status=Status.QUEUED, email__isnull=True
    ).values_list("pk", "member_id")
    emails_queue(
        [
            outbox_row(
                key=campaign_email_key(campaign_id=campaign.pk, member_id=member_id, cycle=cycle),
                kind=CAMPAIGN_EMAIL,
                member_id=member_id,
                program_id=campaign.program_id,
                message_id=message_id,
                now=now,
                due_at=due_at,
            )
            for message_id, member_id in queued
        ],
        nudge=False,
    )


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
            redemption = redeem(
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


def campaign_language(campaign: Campaign) -> str:
    return campaign.language or settings.LANGUAGE_CODE


def in_language(language: str):
    """``translation.override(language)``, or nothing when it is active already: a batch of
    emails in one language switches once, not twice per email."""
    if translation.get_language() == language:
        return nullcontext()
    return translation.override(language)


def message_send(*, message_id: int, now: datetime | None = None) -> str:
    """Send one queued message now through the outbox (what the workers do in batches);
    returns the message's status afterwards (``sent``, ``skipped``, ``failed``, or ``queued``
    when a mail error left it for a later attempt), ``missing`` or ``not_queued``."""
    from .outbox import outbox_dispatch

    found = Message.objects.filter(pk=message_id).values_list("status", "email__pk").first()
    if found is None:
        return "missing"
    status, email_id = found
    if status != Status.QUEUED or email_id is None:
        return "not_queued"
    if not outbox_dispatch(now=now, ids=[email_id]).get("claimed"):
        return "not_queued"
    return Message.objects.filter(pk=message_id).values_list("status", flat=True).first() or "missing"


# --- rendering -----------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    """A campaign template compiled once per process (keyed on its text: an edit compiles anew),
    in the staff template sandbox (``staff_templates``): raises TemplateSyntaxError, also for
    what the sandbox refuses."""
    return staff_template_compile(source)


def campaign_templates(campaign: Campaign) -> tuple[Template, Template, Template | None]:
    """Compiled subject, text and HTML (``None`` without an HTML version); raises TemplateSyntaxError."""
    html_template = _compiled(campaign.html_template) if campaign.html_template.strip() else None
    return _compiled(campaign.subject), _compiled(campaign.text_template), html_template


def _absolute(path: str) -> str:
    return f"{site_url()}{path}"


_TOKEN_SLOT = "LOYALTY-TOKEN-SLOT"


def _tokened_url(name: str, token: str) -> str:
    """``SITE_URL`` + ``reverse(name, args=[token])``, resolving the route once per process:
    a batch of emails builds three such links per email (unsubscribe, open pixel, clicks)."""
    return _url_pattern(name, get_script_prefix(), site_url()).replace(_TOKEN_SLOT, token)


@lru_cache(maxsize=64)
def _url_pattern(name: str, script_prefix: str, site: str) -> str:
    return f"{site}{reverse(name, args=[_TOKEN_SLOT])}"


def shop_name_for(program: Program) -> str:
    return loyalty_settings.SHOP_NAME or program.name


_LINK = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)


def track_links(body: str, *, message: Message, keep: set[str] = frozenset()) -> str:
    """Route http(s) links to our own site (``SITE_URL``'s host) through the click tracker;
    other links, and those in ``keep`` (the unsubscribe link), stay as they are."""
    own_host = urlsplit(site_url()).netloc.lower()

    def rewrite(match: re.Match) -> str:
        url = html.unescape(match.group(3)).strip()
        parts = urlsplit(url)
        if url in keep or parts.scheme.lower() not in ("http", "https") or parts.netloc.lower() != own_host:
            return match.group(0)
        tracked = _tokened_url("loyalty:track_click", click_token(message, url))
        return f"{match.group(1)}{match.group(2)}{html.escape(tracked)}{match.group(2)}"

    return _LINK.sub(rewrite, body)


@dataclass(frozen=True)
class RenderedEmail:
    """A campaign email as rendered for one member: what ``message_send`` sends and the admin
    preview shows. ``html`` is the full document (the layout around the campaign's HTML) or
    ``None`` when the campaign has none. The text and HTML come out of the template engine
    marked safe: escape them (``|force_escape``) before showing them in a page."""

    subject: str
    text: str
    html: str | None
    headers: dict[str, str]


#: Stands in for the member's token in a preview: the unsubscribe page refuses it as an invalid link.
PREVIEW_TOKEN = "preview"
#: A transparent 1×1 GIF inline, in place of the open pixel: the layout keeps its image, nothing is counted.
PREVIEW_PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def _context(
    *, member: Member, message: Message | None, incentive_text: str, incentive_expires_at: datetime | None
) -> dict:
    program = member.program
    user = member.user
    expires_on: date | None = timezone.localdate(incentive_expires_at) if incentive_expires_at else None
    token = PREVIEW_TOKEN if message is None else unsubscribe_token(member, message=message)
    return {
        "first_name": getattr(user, "first_name", "") or "",
        "balance": member.balance,
        "tier": member.tier.name if member.tier_id and member.tier else "",
        "incentive": incentive_text,
        "incentive_expires_on": expires_on,
        "unsubscribe_url": _tokened_url("loyalty:unsubscribe", token),
        "shop_url": f"{site_url()}/",
        "shop_name": shop_name_for(program),
        "program_name": program.name,
    }


def message_context(*, message: Message, member: Member, incentive: IssuedIncentive) -> dict:
    """The variables a campaign's templates may use."""
    return _context(
        member=member, message=message, incentive_text=incentive.text, incentive_expires_at=incentive.expires_at
    )


def campaign_render(
    *,
    campaign: Campaign,
    member: Member,
    message: Message | None = None,
    incentive_text: str = "",
    incentive_expires_at: datetime | None = None,
) -> RenderedEmail:
    """Render ``campaign``'s subject, text and HTML for ``member``, in the campaign's language.
    Pure: reads, writes nothing, sends nothing.

    With a ``message`` the links are the real ones: shop links in the HTML go through the click
    tracker, the layout gets the open pixel, the unsubscribe link carries the member's token.
    Without one (a preview) nothing is tracked: links stay as written, the pixel is an inline
    image, and the unsubscribe link carries ``PREVIEW_TOKEN``, which unsubscribes nobody.
    Raises ``TemplateSyntaxError`` when a template does not compile; an error raised while
    rendering (a filter, a ``{% url %}``) propagates as it is.
    """
    subject_template, text_template, html_template = campaign_templates(campaign)
    with in_language(campaign_language(campaign)):
        ctx = _context(
            member=member,
            message=message,
            incentive_text=incentive_text,
            incentive_expires_at=incentive_expires_at,
        )
        unsubscribe_url = ctx["unsubscribe_url"]
        subject = " ".join(subject_template.render(Context(ctx, autoescape=False)).split())
        text = text_template.render(Context(ctx, autoescape=False))
        body = None
        if html_template is not None:
            inner = html_template.render(Context(ctx, autoescape=True))
            if message is not None:
                inner = track_links(inner, message=message, keep={unsubscribe_url})
                open_url = _tokened_url("loyalty:track_open", tracking_token(message))
            else:
                open_url = PREVIEW_PIXEL
            body = _layout(ctx, subject=subject, body=inner, open_url=open_url)
    headers = {"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    return RenderedEmail(subject=subject, text=text, html=body, headers=headers)


#: Stand-ins for the per-email values in a layout rendered once (see :func:`_layout`).
_SLOTS = {name: f"\x00loyalty-{name}\x00" for name in ("subject", "body", "open_url", "unsubscribe_url")}
_PER_EMAIL = {"first_name", "balance", "tier", "incentive", "incentive_expires_on", *_SLOTS}


def _layout(ctx: dict, *, subject: str, body: str, open_url: str) -> str:
    """The HTML layout around the campaign's body. The layout only varies per email in the
    subject, the body and two links, so it is rendered once per programme and language with
    stand-ins, which each email then replaces (escaped as the template would). A layout that
    uses those values any other way (a filter on them, say) is rendered in full per email."""
    constant = tuple(sorted((k, str(v)) for k, v in ctx.items() if k not in _PER_EMAIL))
    skeleton = _layout_skeleton(constant, translation.get_language())
    values = {
        "subject": conditional_escape(subject),
        "body": body,  # rendered with autoescape from the campaign's own template
        "open_url": conditional_escape(open_url),
        "unsubscribe_url": conditional_escape(ctx["unsubscribe_url"]),
    }
    if skeleton is not None:
        for name, slot in _SLOTS.items():
            skeleton = skeleton.replace(slot, values[name])
        return skeleton
    return render_to_string(
        LAYOUT_TEMPLATE,
        {
            **ctx,
            "subject": subject,
            "body": mark_safe(body),
            "open_url": open_url,
            "language": translation.get_language(),
        },
    )


@lru_cache(maxsize=64)
def _layout_skeleton(constant: tuple[tuple[str, str], ...], language: str) -> str | None:
    slots = {name: mark_safe(slot) for name, slot in _SLOTS.items()}
    rendered = render_to_string(LAYOUT_TEMPLATE, {**dict(constant), **slots, "language": language})
    if any(rendered.count(slot) != 1 for name, slot in _SLOTS.items() if name != "unsubscribe_url"):
        return None
    return rendered


def message_email(*, message: Message, member: Member, incentive: IssuedIncentive) -> EmailMultiAlternatives:
    """The email for ``message``: text and (when the campaign has one) tracked HTML, with
    RFC 8058 one-click unsubscribe headers, rendered in the campaign's language."""
    rendered = campaign_render(
        campaign=message.campaign,
        member=member,
        message=message,
        incentive_text=incentive.text,
        incentive_expires_at=incentive.expires_at,
    )
    return email_message(rendered, to=getattr(member.user, member.user.get_email_field_name()))


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


# --- signed tokens ---------------------------------------------------------------------------
# Salted per purpose, so an open-pixel token never works as an unsubscribe token. Each expires,
# generously: an unsubscribe link must keep working in an old email for a long time.

#: How long an email's links work after it was sent (an expired link is refused like a bad one).
UNSUBSCRIBE_MAX_AGE = timedelta(days=730)
OPEN_MAX_AGE = timedelta(days=180)
CLICK_MAX_AGE = timedelta(days=365)


def unsubscribe_token(member: Member, *, message: Message | None = None) -> str:
    payload = {"m": member.pk}
    if message is not None:
        payload["g"] = message.pk
    return signing.dumps(payload, salt=UNSUBSCRIBE_SALT)


def unsubscribe_token_load(token: str) -> tuple[Member, Message | None] | None:
    """The member (and message) a token was made for; ``None`` for a bad, tampered or expired token."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT, max_age=UNSUBSCRIBE_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired included
        return None
    if not isinstance(data, dict) or not isinstance(data.get("m"), int):
        return None
    member = Member.objects.select_related("program", "user").filter(pk=data["m"]).first()
    if member is None:
        return None
    message_id = data.get("g")
    message = Message.objects.filter(pk=message_id, member=member).first() if isinstance(message_id, int) else None
    return member, message


def tracking_token(message: Message) -> str:
    return signing.dumps(message.pk, salt=OPEN_SALT)


def tracking_token_load(token: str) -> int | None:
    try:
        message_id = signing.loads(token, salt=OPEN_SALT, max_age=OPEN_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired included
        return None
    return message_id if isinstance(message_id, int) else None


def click_token(message: Message, url: str) -> str:
    """Signs the message id and the target together: neither can be swapped."""
    return signing.dumps({"m": message.pk, "u": url}, salt=CLICK_SALT)


def click_token_load(token: str) -> tuple[int, str] | None:
    try:
        data = signing.loads(token, salt=CLICK_SALT, max_age=CLICK_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired included
        return None
    if not isinstance(data, dict) or not isinstance(data.get("m"), int) or not isinstance(data.get("u"), str):
        return None
    return data["m"], data["u"]


# --- what members do with the email ------------------------------------------------------------


def member_unsubscribe(*, member: Member, message: Message | None = None, at: datetime | None = None) -> bool:
    """Withdraw the member's marketing consent; ``True`` if it was on. Twice changes nothing."""
    at = at or timezone.now()
    with transaction.atomic():
        changed = Member.objects.filter(pk=member.pk, marketing_consent=True).update(
            marketing_consent=False, consent_changed_at=at
        )
        if message is not None:
            Message.objects.filter(pk=message.pk, unsubscribed_at__isnull=True).update(unsubscribed_at=at)
    if changed:
        member.marketing_consent, member.consent_changed_at = False, at
        logger.info("Member %s unsubscribed from marketing emails.", member.pk)
    return bool(changed)


def message_opened(*, message_id: int, at: datetime | None = None) -> bool:
    """Record the first open of a sent message; ``True`` if this was it."""
    at = at or timezone.now()
    return bool(Message.objects.filter(pk=message_id, status=Status.SENT, opened_at__isnull=True).update(opened_at=at))


def message_clicked(*, message_id: int, at: datetime | None = None) -> bool:
    """Record the first click (a click means the email was opened, images blocked or not)."""
    at = at or timezone.now()
    with transaction.atomic():
        first = Message.objects.filter(pk=message_id, status=Status.SENT, clicked_at__isnull=True).update(clicked_at=at)
        Message.objects.filter(pk=message_id, status=Status.SENT, opened_at__isnull=True).update(opened_at=at)
    return bool(first)


def purchase_attribute(*, purchase: Purchase) -> int | None:
    """Credit a member's paid purchase to the latest message whose attribution window holds it.

    Sent messages count from ``sent_at``, control rows from ``created_at`` (when they would
    have been sent); the window is ``[start, start + attribution_days]``, both ends included.
    A message converts once. Returns the message id, or ``None``. One indexed query when the
    member has no open message.
    """
    if purchase.member_id is None:
        return None
    at = purchase.occurred_at
    started = Case(When(status=Status.SENT, then=F("sent_at")), default=F("created_at"))
    candidates = (
        Message.objects.filter(
            member_id=purchase.member_id, status__in=(Status.SENT, Status.CONTROL), converted_at__isnull=True
        )
        .annotate(started=started)
        .filter(started__lte=at)
        .order_by("-started", "-pk")
        .values_list("pk", "started", "campaign__attribution_days")[:ATTRIBUTION_CANDIDATES]
    )
    for message_id, start, days in candidates:
        if at <= start + timedelta(days=days):
            converted = Message.objects.filter(pk=message_id, converted_at__isnull=True).update(
                converted_at=at, conversion_purchase=purchase, revenue=purchase.amount or Decimal("0.00")
            )
            return message_id if converted else None
    return None


# --- schedules (django-celery-beat) ------------------------------------------------------------


def campaign_schedule_name(campaign_id: int) -> str:
    return f"loyalty-campaign-{campaign_id}"


def campaign_schedule_sync(*, campaign: Campaign):
    """Keep the campaign's beat entry (``PeriodicTask``) in step: created with a daily 10:00
    schedule in ``TIME_ZONE`` the first time, enabled while the campaign is active. A
    schedule staff changed in admin is kept. ``None`` without django-celery-beat."""
    if not apps.is_installed("django_celery_beat"):
        return None
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    name = campaign_schedule_name(campaign.pk)
    periodic = PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name)
    wanted = {
        "task": SCHEDULE_TASK,
        "args": f"[{campaign.pk}]",
        "enabled": bool(campaign.is_active),
        "description": f"Re-engagement campaign “{campaign.name}” (loyalty)",
    }
    kinds = ("interval", "crontab", "solar", "clocked")
    has_schedule = any(getattr(periodic, f"{kind}_id") is not None for kind in kinds)
    if periodic.pk and has_schedule and all(getattr(periodic, key) == value for key, value in wanted.items()):
        return periodic
    for key, value in wanted.items():
        setattr(periodic, key, value)
    if not has_schedule:
        daily = {"minute": "0", "hour": "10", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
        periodic.crontab = CrontabSchedule.objects.filter(
            **daily, timezone=settings.TIME_ZONE
        ).first() or CrontabSchedule.objects.create(**daily, timezone=settings.TIME_ZONE)
    periodic.save()  # save(), not update(): beat notices the change through PeriodicTasks
    return periodic


def campaign_schedule_delete(*, campaign_id: int) -> None:
    if not apps.is_installed("django_celery_beat"):
        return
    from django_celery_beat.models import PeriodicTask

    for periodic in PeriodicTask.objects.filter(name=campaign_schedule_name(campaign_id)):
        periodic.delete()  # instance delete: beat is told


# --- resending (admin) ---------------------------------------------------------------------------


def message_resend(*, message: Message, by=None, token: str | None = None) -> Message:
    """Queue a new message of ``message``'s campaign to the same member, cycle ``resend-<8 hex>``,
    and its email in the outbox; returns the new message.

    Only a sent or failed message is resent. The resend carries the original's incentive:
    the outbox keys it on the original message, so the customer sees the same points or
    code and nothing is issued twice. The checks made when it is sent (campaign and programme on, consent, an active
    account with an address) are made now, so staff see a refusal instead of a skipped message.
    Every refusal is a :class:`LoyaltyError` and writes nothing. ``token`` (the admin form's)
    names the cycle, so a form sent twice returns the first resend instead of queueing another.
    """
    import uuid

    cycle = f"resend-{(token or uuid.uuid4().hex)[:8]}"
    with transaction.atomic():
        locked = Member.objects.select_for_update(of=("self",)).select_related("program", "user")
        member = locked.get(pk=message.member_id)
        original = Message.objects.select_related("campaign__program").get(pk=message.pk)
        campaign = original.campaign
        found = Message.objects.filter(campaign_id=campaign.pk, member_id=member.pk, cycle=cycle).first()
        if found is not None:
            return found
        if original.status not in (Status.SENT, Status.FAILED):
            raise LoyaltyError(
                _("Only a sent or failed message can be resent; this one is %(status)s.")
                % {"status": original.get_status_display().lower()},
                code="message_not_resendable",
            )
        if reason := campaign_skip_reason(original, member):
            raise LoyaltyError(reason, code="message_not_sendable")
        resent = Message.objects.create(
            campaign=campaign,
            program_id=campaign.program_id,
            member=member,
            cycle=cycle,
            status=Status.QUEUED,
            segment=original.segment,
            created_at=timezone.now(),
            # The resend carries the original's incentive (same ledger entry or code), never a second one.
            incentive_reference=f"{RESEND_MARK}{_incentive_owner(original)}",
        )

        email_queue(
            key=campaign_email_key(campaign_id=campaign.pk, member_id=member.pk, cycle=cycle),
            kind=CAMPAIGN_EMAIL,
            member=member,
            message_id=resent.pk,
        )
    logger.info(
        "Message %s resent as message %s by user %s.", original.pk, resent.pk, getattr(by, "pk", None) or "system"
    )
    return resent
