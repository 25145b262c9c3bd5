"""Re-engagement campaigns: email members of chosen segments, with an incentive, and measure it.

- ``campaign_run`` selects in SQL and writes one ``Message`` per member and cycle (the run's
  local day); the unique constraint makes a rerun on the same day add nothing. A stable hash
  holds a share of members back as the control group: they get a row and no email.
- ``message_send`` (one Celery task per message) issues the incentive idempotently (keyed on
  the message), then sends under the message's row lock, so a duplicate task sends nothing.
- Tracking (open pixel, click redirect), one-click unsubscribe and purchase attribution
  write timestamps once; ``selectors.campaign_report`` reads them back against the control.

Lock order is member, then message (as in order processing, which attributes purchases).
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import smtplib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
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
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..conf import loyalty_settings
from ..exceptions import LoyaltyError
from ..models import Campaign, Member, Message, PointsEntry, Program, Purchase, Reward
from .ledger import points_credit
from .rewards import redeem

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


class MessageSendRetry(Exception):
    """Sending failed for a reason that may pass (SMTP, network): the task tries again later."""

    def __init__(self, message_id: int, attempts: int, error: str) -> None:
        super().__init__(f"message {message_id}, attempt {attempts}: {error}")
        self.message_id, self.attempts, self.error = message_id, attempts, error


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


def campaign_eligible_members(*, campaign: Campaign, now: datetime) -> QuerySet[Member]:
    """Who the campaign would queue now (one query): segment, consent, an address, no recent
    re-engagement email from any campaign of the programme, none from this one this cycle."""
    email = get_user_model().get_email_field_name()
    cooldown_from = now - timedelta(days=campaign.cooldown_days)
    recent = Message.objects.filter(
        member_id=OuterRef("pk"), status__in=(Status.QUEUED, Status.SENT), created_at__gt=cooldown_from
    )
    this_cycle = Message.objects.filter(member_id=OuterRef("pk"), campaign_id=campaign.pk, cycle=campaign_cycle(now))
    members = (
        Member.objects.filter(
            program_id=campaign.program_id,
            health__segment__in=[str(s) for s in campaign.segments or []],
            marketing_consent=True,
        )
        .exclude(**{f"user__{email}": ""})
        .exclude(**{f"user__{email}__isnull": True})
        .filter(~Exists(recent), ~Exists(this_cycle))
    )
    if _user_has_field("is_active"):
        members = members.filter(user__is_active=True)
    return members


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
            counts["eligible"] += len(chunk)
            last_id = chunk[-1][0]
        Campaign.objects.filter(pk=current.pk).update(last_run_at=now)
        eta = campaign_next_send_at(campaign=current, now=now)
        campaign_id = current.pk
        transaction.on_commit(lambda: _enqueue_cycle(campaign_id, cycle, eta))
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


def _enqueue_cycle(campaign_id: int, cycle: str, eta: datetime | None) -> None:
    """One ``send_message`` task per queued message of the cycle (a rerun re-drives lost ones;
    a duplicate task sends nothing). A broker outage is logged; the next run retries."""
    from ..tasks import send_message

    queued = Message.objects.filter(campaign_id=campaign_id, cycle=cycle, status=Status.QUEUED).order_by("pk")
    last_id, enqueued = 0, 0
    try:
        with send_message.app.producer_or_acquire() as producer:
            while True:
                ids = list(queued.filter(pk__gt=last_id).values_list("pk", flat=True)[:CHUNK_SIZE])
                for message_id in ids:
                    send_message.apply_async((message_id,), eta=eta, producer=producer)
                enqueued += len(ids)
                if len(ids) < CHUNK_SIZE:
                    break
                last_id = ids[-1]
    except Exception:
        logger.exception(
            "Campaign %s, cycle %s: %s send tasks queued, then the broker failed; rerun the campaign to send the rest.",
            campaign_id,
            cycle,
            enqueued,
        )


# --- sending -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedIncentive:
    text: str  # the sentence the email shows ("We have added 200 bonus points to your account")
    expires_at: datetime | None
    reference: str  # stored on the message: the ledger entry or the reward code


NO_INCENTIVE = IssuedIncentive("", None, "")


def _skip_reason(message: Message, member: Member) -> str:
    campaign, user = message.campaign, member.user
    if not campaign.is_active:
        return "The campaign was switched off before the email was sent."
    if not campaign.program.is_active:
        return "The programme is switched off."
    if not member.marketing_consent:
        return "The member has withdrawn marketing consent."
    if not getattr(user, "is_active", True):
        return "The customer's account is deactivated."
    if not (getattr(user, user.get_email_field_name(), "") or "").strip():
        return "The customer has no email address."
    return ""


def _locked_queued(message_id: int) -> Message | str:
    """The message under its row lock with its campaign, or the outcome when there is nothing to send."""
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("campaign__program", "campaign__incentive_reward")
        .filter(pk=message_id)
        .first()
    )
    if message is None:
        return "missing"
    if message.status != Status.QUEUED:
        return "not_queued"
    return message


def _close(message: Message, status: str, error: str) -> str:
    message.status, message.last_error = status, error[:2000]
    message.save(update_fields=["status", "last_error"])
    return status


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


def _issue_incentive(message: Message, member: Member, now: datetime) -> IssuedIncentive:
    """Points or a reward code, keyed on the message: a retried send issues nothing new."""
    campaign = message.campaign
    if campaign.incentive == Incentive.POINTS and campaign.incentive_points > 0:
        entry = points_credit(
            member=member,
            points=campaign.incentive_points,
            kind=PointsEntry.Kind.BONUS,
            idempotency_key=f"campaign:{message.pk}:bonus",
            reference=f"campaign:{campaign.pk}",
            description=f"Campaign “{campaign.name}”"[:255],
            at=now,
            expires_at=now + timedelta(days=campaign.incentive_valid_days),
            locked=True,
        )
        text = ngettext(
            "We have added %(points)d bonus point to your account",
            "We have added %(points)d bonus points to your account",
            entry.points,
        ) % {"points": entry.points}
        return IssuedIncentive(text, entry.expires_at, f"points:{entry.points}:entry:{entry.pk}")
    if campaign.incentive == Incentive.REWARD:
        if campaign.incentive_reward is None:
            raise LoyaltyError("The campaign has no reward to give.", code="campaign_without_reward")
        redemption = redeem(
            member=member,
            reward=campaign.incentive_reward,
            idempotency_key=f"campaign:{message.pk}",
            free=True,
            at=now,
            valid_days=campaign.incentive_valid_days,
            notify=False,
        )
        text = _("Your code %(code)s: %(offer)s") % {
            "code": redemption.code,
            "offer": _reward_phrase(redemption.reward),
        }
        return IssuedIncentive(text, redemption.expires_at, f"code:{redemption.code}"[:100])
    return NO_INCENTIVE


def _campaign_language(campaign: Campaign) -> str:
    return campaign.language or settings.LANGUAGE_CODE


def message_send(*, message_id: int, now: datetime | None = None) -> str:
    """Send one queued message; returns the outcome (``sent``, ``skipped``, ``failed``,
    ``missing``, ``not_queued``). Raises :class:`MessageSendRetry` on an SMTP or network error
    until ``CAMPAIGN_MAX_ATTEMPTS`` attempts, then the message is ``failed`` with the error.

    Two short transactions: the incentive under the member's lock (as every ledger write),
    then the send under the message's lock only, so a slow mail server never holds up the
    member's checkout while a duplicate task still waits and then finds the message sent.
    """
    now = now or timezone.now()
    member_id = Message.objects.filter(pk=message_id).values_list("member_id", flat=True).first()
    if member_id is None:
        return "missing"
    with transaction.atomic():
        member = (
            Member.objects.select_for_update(of=("self",))
            .select_related("program", "user")
            .filter(pk=member_id)
            .first()
        )
        message = _locked_queued(message_id) if member is not None else "missing"
        if isinstance(message, str):
            return message
        if reason := _skip_reason(message, member):
            return _close(message, Status.SKIPPED, reason)
        try:
            _templates(message.campaign)
        except TemplateSyntaxError as exc:
            return _close(message, Status.FAILED, f"The campaign's template does not compile: {exc}")
        with translation.override(_campaign_language(message.campaign)):
            try:
                incentive = _issue_incentive(message, member, now)
            except LoyaltyError as exc:
                return _close(message, Status.FAILED, f"Incentive not issued ({exc.code}): {exc.message}")
        if incentive.reference != message.incentive_reference:
            message.incentive_reference = incentive.reference
            message.save(update_fields=["incentive_reference"])

    retry: MessageSendRetry | None = None
    with transaction.atomic():
        message = _locked_queued(message_id)
        if isinstance(message, str):
            return message
        member = Member.objects.select_related("program", "user", "tier").get(pk=message.member_id)
        if reason := _skip_reason(message, member):  # unsubscribed in between
            return _close(message, Status.SKIPPED, reason)
        email = message_email(message=message, member=member, incentive=incentive)
        message.attempts += 1
        try:
            email.send()
        except (smtplib.SMTPException, OSError) as exc:
            message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if message.attempts >= loyalty_settings.CAMPAIGN_MAX_ATTEMPTS:
                message.status = Status.FAILED
                logger.error("Campaign message %s failed after %s attempts: %s", message_id, message.attempts, exc)
            else:
                retry = MessageSendRetry(message_id, message.attempts, message.last_error)
            message.save(update_fields=["attempts", "last_error", "status"])
        else:
            message.status, message.sent_at, message.to_email = Status.SENT, now, email.to[0]
            message.save(update_fields=["attempts", "status", "sent_at", "to_email"])
    if retry is not None:
        raise retry
    return message.status


# --- rendering -----------------------------------------------------------------------------


def _templates(campaign: Campaign) -> tuple[Template, Template, Template | None]:
    """Compiled subject, text and HTML (``None`` without an HTML version); raises TemplateSyntaxError."""
    html_template = Template(campaign.html_template) if campaign.html_template.strip() else None
    return Template(campaign.subject), Template(campaign.text_template), html_template


def _site() -> str:
    return str(loyalty_settings.SITE_URL).rstrip("/")


def _absolute(path: str) -> str:
    return f"{_site()}{path}"


def shop_name_for(program: Program) -> str:
    return loyalty_settings.SHOP_NAME or program.name


_LINK = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)


def track_links(body: str, *, message: Message, keep: set[str] = frozenset()) -> str:
    """Route http(s) links to our own site (``SITE_URL``'s host) through the click tracker;
    other links, and those in ``keep`` (the unsubscribe link), stay as they are."""
    own_host = urlsplit(_site()).netloc.lower()

    def rewrite(match: re.Match) -> str:
        url = html.unescape(match.group(3)).strip()
        parts = urlsplit(url)
        if url in keep or parts.scheme.lower() not in ("http", "https") or parts.netloc.lower() != own_host:
            return match.group(0)
        tracked = _absolute(reverse("loyalty:track_click", args=[click_token(message, url)]))
        return f"{match.group(1)}{match.group(2)}{html.escape(tracked)}{match.group(2)}"

    return _LINK.sub(rewrite, body)


def message_context(*, message: Message, member: Member, incentive: IssuedIncentive) -> dict:
    """The variables a campaign's templates may use."""
    program = member.program
    user = member.user
    expires_on: date | None = timezone.localdate(incentive.expires_at) if incentive.expires_at else None
    return {
        "first_name": getattr(user, "first_name", "") or "",
        "balance": member.balance,
        "tier": member.tier.name if member.tier_id and member.tier else "",
        "incentive": incentive.text,
        "incentive_expires_on": expires_on,
        "unsubscribe_url": _absolute(reverse("loyalty:unsubscribe", args=[unsubscribe_token(member, message=message)])),
        "shop_url": f"{_site()}/",
        "shop_name": shop_name_for(program),
        "program_name": program.name,
    }


def message_email(*, message: Message, member: Member, incentive: IssuedIncentive) -> EmailMultiAlternatives:
    """The email for ``message``: text and (when the campaign has one) tracked HTML, with
    RFC 8058 one-click unsubscribe headers, rendered in the campaign's language."""
    campaign = message.campaign
    subject_template, text_template, html_template = _templates(campaign)
    with translation.override(_campaign_language(campaign)):
        ctx = message_context(message=message, member=member, incentive=incentive)
        subject = " ".join(subject_template.render(Context(ctx, autoescape=False)).split())
        text = text_template.render(Context(ctx, autoescape=False))
        body = None
        if html_template is not None:
            inner = track_links(
                html_template.render(Context(ctx, autoescape=True)), message=message, keep={ctx["unsubscribe_url"]}
            )
            body = render_to_string(
                LAYOUT_TEMPLATE,
                {
                    **ctx,
                    "subject": subject,
                    "body": mark_safe(inner),  # rendered with autoescape from the campaign's own template
                    "open_url": _absolute(reverse("loyalty:track_open", args=[tracking_token(message)])),
                    "language": translation.get_language(),
                },
            )
    unsubscribe_url = ctx["unsubscribe_url"]
    email = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[getattr(member.user, member.user.get_email_field_name())],
        headers={"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )
    if body is not None:
        email.attach_alternative(body, "text/html")
    return email


# --- signed tokens ---------------------------------------------------------------------------
# Salted per purpose, so an open-pixel token never works as an unsubscribe token. No expiry:
# an unsubscribe link must keep working in an old email.


def unsubscribe_token(member: Member, *, message: Message | None = None) -> str:
    payload = {"m": member.pk}
    if message is not None:
        payload["g"] = message.pk
    return signing.dumps(payload, salt=UNSUBSCRIBE_SALT)


def unsubscribe_token_load(token: str) -> tuple[Member, Message | None] | None:
    """The member (and message) a token was made for; ``None`` for a bad or tampered token."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
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
        message_id = signing.loads(token, salt=OPEN_SALT)
    except signing.BadSignature:
        return None
    return message_id if isinstance(message_id, int) else None


def click_token(message: Message, url: str) -> str:
    """Signs the message id and the target together: neither can be swapped."""
    return signing.dumps({"m": message.pk, "u": url}, salt=CLICK_SALT)


def click_token_load(token: str) -> tuple[int, str] | None:
    try:
        data = signing.loads(token, salt=CLICK_SALT)
    except signing.BadSignature:
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
