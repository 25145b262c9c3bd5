"""Emails to members: rendered from ``loyalty/emails/<name>_subject.txt``, ``<name>.txt`` and
(optionally) ``<name>.html``, queued in the outbox in the transaction of the change they
report (:func:`member_email_queue`) and sent by the outbox's workers (``services.outbox``).

Every template extends ``loyalty/emails/base.txt`` / ``base.html`` (the campaign layout shares
the same look). Emails render in the member's language (``user.language`` when the user model
has one, else ``LANGUAGE_CODE``).

Marketing emails (:data:`MARKETING_EMAILS`) go only to members with marketing consent and
carry an unsubscribe link and RFC 8058 one-click ``List-Unsubscribe`` headers; the others are
transactional (they report something the member did or owns) and always go. See docs/emails.md.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.template import Context, TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format

from ..conf import loyalty_settings
from ..models import EmailReceipt, Member, OutboundEmail, PointsEntry, Program

logger = logging.getLogger("loyalty.notifications")

#: Sent only with ``member.marketing_consent``; carry the unsubscribe link and headers.
MARKETING_EMAILS = frozenset(
    {"points_earned", "points_last_chance", "birthday", "monthly_statement", "survey_invitation"}
)
#: Always sent: they report the member's own account (the first expiry notice included).
TRANSACTIONAL_EMAILS = frozenset(
    {
        "welcome",
        "pending_approved",
        "tier_changed",
        "points_expiring",
        "reward_issued",
        "reward_code_expiring",
        "referral_rewarded",
        "referral_friend_rewarded",
    }
)


def is_marketing(template: str) -> bool:
    return template in MARKETING_EMAILS


def member_email_queue(*, member: Member, template: str, key: str, context: dict[str, Any] | None = None) -> None:
    """Queue email ``template`` to the member in the outbox, in the current transaction.

    ``key`` names what the email reports (``tier-change:<id>``, ``redemption:<id>:issued``):
    unique per email, so calling it again for the same change queues nothing. ``context`` must
    be JSON-serialisable (ids, strings, numbers). A marketing email to a member without
    consent is not queued (consent is checked again when it is sent).
    """
    from .outbox import email_queue

    if is_marketing(template) and not member.marketing_consent:
        return
    email_queue(key=key, kind=template, member=member, context=dict(context or {}))


@dataclass(frozen=True)
class MemberEmail:
    subject: str
    text: str
    html: str | None
    headers: dict[str, str]


def member_language(member: Member) -> str:
    return getattr(member.user, "language", "") or settings.LANGUAGE_CODE


def site_url() -> str:
    return str(loyalty_settings.SITE_URL).rstrip("/")


def member_unsubscribe_url(member: Member) -> str:
    from .campaigns import PREVIEW_TOKEN, unsubscribe_token

    token = unsubscribe_token(member) if member.pk else PREVIEW_TOKEN
    return f"{site_url()}{reverse('loyalty:unsubscribe', args=[token])}"


ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _as_date(value: Any) -> Any:
    if isinstance(value, str) and ISO_DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return value


def member_email_render(
    *, member: Member, template: str, context: dict[str, Any] | None = None, language: str | None = None
) -> MemberEmail:
    """Subject, text, HTML (``None`` without a ``<name>.html``) and headers. Pure: writes nothing."""
    from .campaigns import shop_name_for

    marketing = is_marketing(template)
    with translation.override(language or member_language(member)):
        unsubscribe_url = member_unsubscribe_url(member) if marketing else ""
        # Task contexts carry dates as ISO strings (JSON); as dates they print in the member's language.
        extra = {key: _as_date(value) for key, value in (context or {}).items()}
        if isinstance(extra.get("month"), str) and len(extra["month"]) == 7:
            year, month = extra["month"].split("-")
            extra.setdefault("month_name", date_format(date(int(year), int(month), 1), "F Y"))
        ctx = {
            "member": member,
            "program": member.program,
            "user": member.user,
            "shop_name": shop_name_for(member.program),
            "shop_url": f"{site_url()}/",
            "postal_address": member.program.email_postal_address,
            "marketing": marketing,
            "unsubscribe_url": unsubscribe_url,
            "language": translation.get_language(),
            **extra,
        }
        subject = plain_text_subject(f"loyalty/emails/{template}_subject.txt", ctx)
        ctx["subject"] = subject
        text = render_to_string(f"loyalty/emails/{template}.txt", ctx)
        try:
            html = render_to_string(f"loyalty/emails/{template}.html", ctx)
        except TemplateDoesNotExist:
            html = None
    headers = {}
    if marketing:
        headers = {"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    return MemberEmail(subject=subject, text=text, html=html, headers=headers)


def plain_text_subject(template_name: str, context: dict) -> str:
    """A subject template rendered as plain text: no HTML escaping ("A & B", not "A &amp; B"),
    whitespace and newlines folded into single spaces (a header is one line)."""
    template = get_template(template_name)
    compiled = getattr(template, "template", None)  # the Django engine's own Template
    if compiled is not None:
        text = compiled.render(Context(context, autoescape=False))
    else:  # another engine: undo its escaping
        text = html.unescape(template.render(context))
    return " ".join(text.split())


def email_message(rendered: MemberEmail, *, to: str, subject: str | None = None) -> EmailMultiAlternatives:
    """The email for a rendered message (a member email, a survey, a campaign): text, the HTML
    alternative when there is one, the rendered headers; ``subject`` replaces the rendered one."""
    email = EmailMultiAlternatives(
        subject=rendered.subject if subject is None else subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers=dict(rendered.headers),
    )
    if rendered.html is not None:
        email.attach_alternative(rendered.html, "text/html")
    return email


def send_member_email(*, member_id: int, template: str, context: dict[str, Any]) -> bool:
    """Queue and send one member email now, through the outbox (staff tools and tests; the
    services queue with :func:`member_email_queue` and workers send). ``False`` when nothing
    was sent: the member or their address is gone, or a marketing email lacks consent."""
    import uuid

    from .outbox import email_queue, outbox_dispatch

    member = Member.objects.filter(pk=member_id).first()
    if member is None:
        return False
    key = f"direct:{template}:{uuid.uuid4().hex}"
    with transaction.atomic():
        email_queue(key=key, kind=template, member=member, context=dict(context or {}))
    email_id = OutboundEmail.objects.filter(key=key).values_list("pk", flat=True).first()
    outbox_dispatch(ids=[email_id])
    return OutboundEmail.objects.filter(pk=email_id, status=OutboundEmail.Status.SENT).exists()


# --- monthly statement ---------------------------------------------------------------------------

STATEMENT_CHUNK = 1000
STATEMENT_EXPIRING_DAYS = 30


def statement_month(now: datetime) -> tuple[str, datetime, datetime]:
    """The month a statement run on ``now`` reports: ``("YYYY-MM", start, end)`` of last month (local time)."""
    first_this = timezone.localdate(now).replace(day=1)
    first_last = (first_this - timedelta(days=1)).replace(day=1)
    start = timezone.make_aware(datetime.combine(first_last, time()))
    end = timezone.make_aware(datetime.combine(first_this, time()))
    return f"{first_last:%Y-%m}", start, end


def monthly_statements_send(*, now: datetime | None = None) -> int:
    """Queue last month's statement to every member of a programme with ``email_monthly_statement``
    who has marketing consent and an address, once per member and month (an ``EmailReceipt`` keyed
    ``statement:<YYYY-MM>``: a rerun queues nothing). Set-based: members are selected in chunks,
    their figures come from one grouped query per chunk; their emails go to the outbox in bulk."""
    from .campaigns import marketing_reachable
    from .outbox import emails_queue, outbox_row

    now = now or timezone.now()
    month, start, end = statement_month(now)
    key = f"statement:{month}"
    expiring_by = now + timedelta(days=STATEMENT_EXPIRING_DAYS)
    queued = 0
    for program in Program.objects.filter(is_active=True, email_monthly_statement=True):
        sent = EmailReceipt.objects.filter(member_id=OuterRef("pk"), key=key)
        selection = marketing_reachable(Member.objects.filter(program=program)).filter(~Exists(sent)).order_by("pk")
        last = 0
        while ids := list(selection.filter(pk__gt=last).values_list("pk", flat=True)[:STATEMENT_CHUNK]):
            last = ids[-1]
            moves = {
                row["member_id"]: row
                for row in PointsEntry.objects.filter(member_id__in=ids, created_at__gte=start, created_at__lt=end)
                .values("member_id")
                .annotate(earned=Sum("points", filter=Q(points__gt=0)), spent=Sum("points", filter=Q(points__lt=0)))
                .order_by()
            }
            expiring = dict(
                PointsEntry.objects.filter(
                    member_id__in=ids, points__gt=0, remaining__gt=0, expires_at__gt=now, expires_at__lte=expiring_by
                )
                .values("member_id")
                .annotate(total=Sum("remaining"))
                .order_by()
                .values_list("member_id", "total")
            )
            with transaction.atomic():
                EmailReceipt.objects.bulk_create(
                    [
                        EmailReceipt(
                            program=program, member_id=i, key=key, template="monthly_statement", created_at=now
                        )
                        for i in ids
                    ],
                    ignore_conflicts=True,
                )
                # Only the receipts this run wrote: a concurrent run's members are its own.
                mine = list(
                    EmailReceipt.objects.filter(member_id__in=ids, key=key, created_at=now).values_list(
                        "member_id", flat=True
                    )
                )
                with translation.override(settings.LANGUAGE_CODE):
                    expiring_on = date_format(timezone.localdate(expiring_by), "Y-m-d")
                emails_queue(
                    [
                        outbox_row(
                            key=f"{key}:member:{member_id}",
                            kind="monthly_statement",
                            member_id=member_id,
                            program_id=program.pk,
                            now=now,
                            context={
                                "month": month,
                                "earned": moves.get(member_id, {}).get("earned") or 0,
                                "spent": -(moves.get(member_id, {}).get("spent") or 0),
                                "expiring": expiring.get(member_id, 0),
                                "expiring_by": expiring_on,
                            },
                        )
                        for member_id in mine
                    ]
                )
                queued += len(mine)
    return queued
