"""The email outbox: one way for every email loyalty sends (member notifications, campaign
messages, survey invitations, staff alerts).

Writing: :func:`email_queue` / :func:`emails_queue` insert ``OutboundEmail`` rows in the
caller's transaction, keyed uniquely per email (``INSERT ... ON CONFLICT DO NOTHING``: a rerun
or a redelivered event writes nothing twice), and register one best-effort nudge for after the
commit. Nothing about an email is decided after commit.

Sending: :func:`outbox_dispatch` claims due rows in a batch (``SELECT ... FOR UPDATE SKIP
LOCKED``, so workers on several machines share the queue), loads them with one query, renders
them (campaign templates compiled once per campaign), sends them over one mail connection and
marks them in bulk statements: every ``EMAIL_FLUSH_EVERY`` messages or ``FLUSH_SECONDS``,
whichever comes first, so a slow mail server gets each email marked right after it went.

Delivery never depends on the broker: the nudge gives up within about a second (broker
timeouts in settings, no publish retries, and a pause after a failed nudge) and the beat task
``dispatch_emails`` runs every minute, re-driving rows whose task was lost and rows whose
worker died (their lease runs out).

Exactly once, and the window where it is not: a row is marked ``sent`` after the mail backend
accepted it. A worker killed after the backend accepted a message and before the next flush
committed the mark sends that message again when the lease runs out (at most the messages of
one flush; with a mail server slower than ``FLUSH_SECONDS`` per message, one email).

Incentives follow the email: a campaign's bonus points are credited in the same transaction
as the ``sent`` mark (never for an email that failed); a reward code has to be in the email,
so it is issued before sending and cancelled (its redemption, never deleted) when the email
finally fails.
"""

from __future__ import annotations

import logging
import time as clock
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F, Q
from django.template import TemplateSyntaxError
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import loyalty_settings
from ..exceptions import LoyaltyError
from ..models import Member, Message, OutboundEmail, PointsEntry, Redemption, SurveyInvitation
from .bulk import bulk_set

logger = logging.getLogger("loyalty.outbox")

Status = OutboundEmail.Status
#: ``kind`` of a campaign message and of a survey invitation; a staff alert; else a member template name.
CAMPAIGN = "campaign"
SURVEY = "survey"
STAFF_ALERT = "staff_alert"
#: Longest wait between two attempts.
MAX_BACKOFF = timedelta(hours=1)
FIRST_BACKOFF = timedelta(minutes=1)
#: Marks are written at least this often while a batch is being sent.
FLUSH_SECONDS = 0.5
#: After a failed nudge, requests stop trying the broker for this long (the beat sweep sends).
NUDGE_PAUSE_SECONDS = 30.0
#: The beat task stops taking new batches after this long (it runs again in a minute).
DISPATCH_TIME_BUDGET = 50.0


# --- writing ---------------------------------------------------------------------------------


def outbox_row(
    *,
    key: str,
    kind: str,
    member: Member | None = None,
    member_id: int | None = None,
    program_id: int | None = None,
    context: dict[str, Any] | None = None,
    to_email: str = "",
    message_id: int | None = None,
    invitation_id: int | None = None,
    now: datetime | None = None,
    due_at: datetime | None = None,
) -> OutboundEmail:
    """An unsaved outbox row (for :func:`emails_queue`)."""
    now = now or timezone.now()
    if member is not None:
        member_id, program_id = member.pk, program_id or member.program_id
    return OutboundEmail(
        key=key[:200],
        kind=kind,
        member_id=member_id,
        program_id=program_id,
        context=context or {},
        to_email=to_email,
        message_id=message_id,
        invitation_id=invitation_id,
        status=Status.QUEUED,
        created_at=now,
        due_at=due_at or min(now, timezone.now()),
    )


def emails_queue(rows: list[OutboundEmail], *, nudge: bool = True) -> None:
    """Insert the rows in the current transaction; a key already there is left alone. One
    statement per 1,000 rows, and one nudge to the workers after the commit."""
    if not rows:
        return
    OutboundEmail.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    if nudge:
        outbox_nudge_on_commit(due_at=min(row.due_at for row in rows))


def email_queue(*, key: str, kind: str, **fields: Any) -> None:
    """Queue one email (see :func:`outbox_row` for the fields)."""
    emails_queue([outbox_row(key=key, kind=kind, **fields)])


# --- the nudge ---------------------------------------------------------------------------------

_nudge_paused_until = 0.0


def _nudge_registered() -> bool:
    """Whether this transaction already has a nudge waiting for its commit (one is enough)."""
    return any(getattr(entry[1], "loyalty_outbox_nudge", False) for entry in db_connection.run_on_commit)


def outbox_nudge_on_commit(*, due_at: datetime | None = None) -> None:
    """Ask a worker to send now, once the transaction commits. Best effort: the beat sweep
    sends anything a lost nudge leaves behind, within a minute. Rows due later (a campaign's
    send window) are left to the sweep."""
    if due_at is not None and due_at > timezone.now() + timedelta(seconds=5):
        return
    if not db_connection.in_atomic_block:
        outbox_nudge()
        return
    if _nudge_registered():
        return

    def nudge() -> None:
        outbox_nudge()

    nudge.loyalty_outbox_nudge = True  # type: ignore[attr-defined]
    transaction.on_commit(nudge)


def outbox_nudge() -> bool:
    """Publish one ``dispatch_emails`` task; never raises, never waits on the broker for more
    than its timeouts (``CELERY_BROKER_TRANSPORT_OPTIONS``). After a failure the broker is
    left alone for ``NUDGE_PAUSE_SECONDS``, so a hung broker costs one request a second, not
    every request."""
    global _nudge_paused_until
    if clock.monotonic() < _nudge_paused_until:
        return False
    from ..tasks import dispatch_emails

    try:
        dispatch_emails.apply_async(retry=False)
    except Exception as exc:  # noqa: BLE001  (the broker is down or hung: the emails wait in the outbox)
        _nudge_paused_until = clock.monotonic() + NUDGE_PAUSE_SECONDS
        logger.warning("Could not reach the broker (%s); emails are sent by the next sweep.", exc)
        return False
    return True


# --- claiming ----------------------------------------------------------------------------------


def _setting(name: str) -> Any:
    return getattr(loyalty_settings, name)


def max_attempts() -> int:
    legacy = loyalty_settings.CAMPAIGN_MAX_ATTEMPTS
    return int(legacy if legacy is not None else loyalty_settings.EMAIL_MAX_ATTEMPTS)


def outbox_claim(*, now: datetime, limit: int, ids: list[int] | None = None) -> tuple[list[int], datetime]:
    """Take up to ``limit`` due rows (queued and due, or sending with a lapsed lease) for this
    worker: status ``sending``, a lease, one more attempt. Rows another worker holds are
    skipped, not waited for. Returns the ids and the lease (which marks them as this claim's)."""
    lease = now + timedelta(seconds=_setting("EMAIL_LEASE_SECONDS"))
    due = Q(status=Status.QUEUED, due_at__lte=now) | Q(status=Status.SENDING, lease_until__lt=now)
    with transaction.atomic():
        rows = OutboundEmail.objects.select_for_update(skip_locked=True).filter(due)
        if ids is not None:
            rows = rows.filter(pk__in=ids)
        claimed = list(rows.order_by("due_at", "pk").values_list("pk", flat=True)[:limit])
        if claimed:
            OutboundEmail.objects.filter(pk__in=claimed).update(
                status=Status.SENDING, lease_until=lease, attempts=F("attempts") + 1
            )
    return claimed, lease


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
    from .notifications import email_message, is_marketing, member_email_render

    row = prepared.row
    member = _member_or_skip(row)
    if is_marketing(row.kind):
        from .campaigns import marketing_unreachable_reason

        if reason := marketing_unreachable_reason(member):
            raise Skip(reason)
    rendered = member_email_render(member=member, template=row.kind, context=row.context)
    prepared.email = email_message(rendered, to=_member_address(member))


def _prepare_survey(prepared: Prepared) -> None:
    from .notifications import email_message
    from .surveys import invitation_render, invitation_skip_reason

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
    from .campaigns import (
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


# --- sending -----------------------------------------------------------------------------------


def _backoff(attempts: int) -> timedelta:
    return min(FIRST_BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


class _Flusher:
    """Collects outcomes and writes them in bulk: a few statements per flush, whatever its size."""

    def __init__(self, *, claim_lease: datetime, now: datetime) -> None:
        self.lease, self.now = claim_lease, now
        self.pending: list[Prepared] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.last = clock.monotonic()

    def add(self, prepared: Prepared) -> None:
        self.pending.append(prepared)
        if len(self.pending) >= _setting("EMAIL_FLUSH_EVERY") or clock.monotonic() - self.last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            outcomes, self.pending = self.pending, []
            _mark(outcomes, lease=self.lease, now=self.now, counts=self.counts)
        self.last = clock.monotonic()


def _mark(outcomes: list[Prepared], *, lease: datetime, now: datetime, counts: dict[str, int]) -> None:
    from .ledger import points_credit_many

    limit = max_attempts()
    with transaction.atomic():
        # Only rows this claim still holds: a row whose lease ran out may be another worker's now.
        mine = set(
            OutboundEmail.objects.select_for_update()
            .filter(pk__in=[p.row.pk for p in outcomes], status=Status.SENDING, lease_until=lease)
            .values_list("pk", flat=True)
        )
        outcomes = [p for p in outcomes if p.row.pk in mine]
        sent = [p for p in outcomes if p.outcome == Status.SENT]
        credits = [p.bonus for p in sent if p.bonus is not None]
        entries = points_credit_many(credits=credits, at=now) if credits else {}
        for p in outcomes:
            row = p.row
            if p.outcome == "" and p.error:  # a send error: again later, or failed for good
                p.outcome = Status.FAILED if row.attempts >= limit else Status.QUEUED
                p.reason = p.error
            row.status, row.lease_until = p.outcome, None
            row.last_error = p.reason[:2000] if p.outcome != Status.SENT else ""
            if p.outcome == Status.SENT:
                row.sent_at = now
                if p.email is not None:
                    row.to_email, row.subject = p.email.to[0][:254], str(p.email.subject)[:255]
            elif p.outcome == Status.QUEUED:
                row.due_at = now + _backoff(row.attempts)
            counts[str(p.outcome)] += 1
        fields = ["status", "lease_until", "last_error", "sent_at", "to_email", "subject", "due_at"]
        bulk_set(OutboundEmail, {p.row.pk: {f: getattr(p.row, f) for f in fields} for p in outcomes}, fields)
        _mirror(outcomes, now=now, entries=entries)
        for p in outcomes:
            if p.outcome == Status.FAILED and p.redemption_id:
                transaction.on_commit(lambda rid=p.redemption_id: _cancel_incentive_code(rid))


def _mirror(outcomes: list[Prepared], *, now: datetime, entries: dict[str, PointsEntry]) -> None:
    """Campaign messages and survey invitations keep their own status (reports, cooldown,
    attribution read it): set it from the outbox row, in the same transaction."""
    messages: dict[int, dict] = {}
    invitations: dict[int, dict] = {}
    for p in outcomes:
        row = p.row
        status = {Status.SENT: "sent", Status.FAILED: "failed", Status.SKIPPED: "skipped"}.get(p.outcome, "queued")
        values = {
            "status": status,
            "attempts": row.attempts,
            "last_error": row.last_error,
            "sent_at": row.sent_at,
            "to_email": row.to_email,
        }
        if row.message_id:
            reference = row.message.incentive_reference if row.message else ""
            if p.outcome == Status.SENT and p.incentive_reference and not reference.startswith("resend-of:"):
                reference = p.incentive_reference
                if p.bonus is not None and p.bonus.idempotency_key in entries:
                    entry = entries[p.bonus.idempotency_key]
                    reference = f"points:{entry.points}:entry:{entry.pk}"
            messages[row.message_id] = {**values, "incentive_reference": reference[:100]}
        elif row.invitation_id:
            invitations[row.invitation_id] = values
    fields = ["status", "attempts", "last_error", "sent_at", "to_email"]
    bulk_set(Message, messages, [*fields, "incentive_reference"])
    bulk_set(SurveyInvitation, invitations, fields)


def _cancel_incentive_code(redemption_id: int) -> None:
    """The reward code of an email that never went out is cancelled (nobody was told it)."""
    from .rewards import redemption_cancel

    redemption = Redemption.objects.filter(pk=redemption_id).first()
    if redemption is None:
        return
    try:
        redemption_cancel(redemption=redemption)
    except LoyaltyError as exc:
        logger.warning("The code of redemption %s could not be cancelled: %s", redemption_id, exc)


def _existing_bonus(rows: list[OutboundEmail]) -> dict[str, PointsEntry]:
    """Campaign bonus entries already in the ledger (a resend, a retry after a crash), one query."""
    from .campaigns import bonus_key

    keys = [bonus_key(row.message) for row in rows if row.kind == CAMPAIGN and row.message is not None]
    if not keys:
        return {}
    return {entry.idempotency_key: entry for entry in PointsEntry.objects.filter(idempotency_key__in=keys)}


def outbox_dispatch(
    *, now: datetime | None = None, limit: int | None = None, ids: list[int] | None = None
) -> dict[str, int]:
    """Claim one batch of due emails and send it. Returns counts by outcome (``sent``,
    ``queued`` (to be retried), ``failed``, ``skipped``) and ``claimed``."""
    now = now or timezone.now()
    claimed, lease = outbox_claim(now=now, limit=limit or _setting("EMAIL_BATCH_SIZE"), ids=ids)
    if not claimed:
        return {"claimed": 0}
    rows = _load(claimed)
    batch = Batch(now=now, existing_bonus=_existing_bonus(rows))
    flusher = _Flusher(claim_lease=lease, now=now)
    ready: list[Prepared] = []
    for row in rows:
        prepared = _prepare(row, batch)
        if prepared.outcome:
            flusher.add(prepared)
        else:
            ready.append(prepared)
    if ready:
        _send(ready, flusher)
    flusher.flush()
    return {"claimed": len(claimed), **flusher.counts}


def _send(ready: list[Prepared], flusher: _Flusher) -> None:
    """Send over one connection; a failed message reopens it for the next one."""
    connection = get_connection()
    opened = False
    try:
        for prepared in ready:
            try:
                if not opened:
                    connection.open()
                    opened = True
                prepared.email.connection = connection
                connection.send_messages([prepared.email])
                prepared.outcome = Status.SENT
            except Exception as exc:  # noqa: BLE001  (SMTP refused, network, the provider's API: try again later)
                prepared.error = f"{type(exc).__name__}: {exc}"
                logger.warning("Email %s (%s) not sent: %s", prepared.row.pk, prepared.row.key, prepared.error)
                _close_quietly(connection)
                opened = False
            flusher.add(prepared)
    finally:
        if opened:
            _close_quietly(connection)


def _close_quietly(connection) -> None:
    try:
        connection.close()
    except Exception:  # the mail server hung up: what it accepted was sent
        logger.info("Closing the mail connection failed.", exc_info=True)


def outbox_expire(*, now: datetime | None = None) -> int:
    """End queued rows older than ``EMAIL_EXPIRE_HOURS`` as ``expired``: a "we miss you" that
    is days late is better not sent, and it stops counting toward the campaign cooldown."""
    now = now or timezone.now()
    limit = now - timedelta(hours=_setting("EMAIL_EXPIRE_HOURS"))
    reason = _("Not sent within %(hours)s hours.") % {"hours": _setting("EMAIL_EXPIRE_HOURS")}
    with transaction.atomic():
        ids = list(
            OutboundEmail.objects.select_for_update(skip_locked=True)
            .filter(status=Status.QUEUED, created_at__lt=limit)
            .values_list("pk", flat=True)[:10_000]
        )
        if not ids:
            return 0
        OutboundEmail.objects.filter(pk__in=ids).update(status=Status.EXPIRED, last_error=reason)
        Message.objects.filter(email__pk__in=ids).update(status=Message.Status.EXPIRED, last_error=reason)
        SurveyInvitation.objects.filter(email__pk__in=ids).update(
            status=SurveyInvitation.Status.EXPIRED, last_error=reason
        )
    logger.warning("%s emails expired unsent.", len(ids))
    return len(ids)


def outbox_dispatch_due(*, time_budget: float = DISPATCH_TIME_BUDGET) -> dict[str, int]:
    """The worker's task: expire stale rows, then send batches until none is due or the time
    budget is spent (the next run goes on)."""
    started = clock.monotonic()
    totals: dict[str, int] = defaultdict(int)
    totals["expired"] = outbox_expire()
    while clock.monotonic() - started < time_budget:
        counts = outbox_dispatch()
        for name, value in counts.items():
            totals[name] += value
        if counts["claimed"] < _setting("EMAIL_BATCH_SIZE"):
            break
    return dict(totals)


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
    from .campaigns import campaign_preview

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


__all__ = [
    "CAMPAIGN",
    "STAFF_ALERT",
    "SURVEY",
    "email_preview",
    "email_queue",
    "emails_cancel",
    "emails_queue",
    "emails_retry",
    "outbox_claim",
    "outbox_dispatch",
    "outbox_dispatch_due",
    "outbox_expire",
    "outbox_nudge",
    "outbox_nudge_on_commit",
    "outbox_row",
]
