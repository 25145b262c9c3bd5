"""Claiming due rows (``SKIP LOCKED``), sending them over one mail connection and marking
them in bulk; expiry and the beat sweep (``outbox_dispatch_due``)."""

from __future__ import annotations

import logging
import time as clock
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.core.mail import get_connection
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ...conf import loyalty_settings
from ...exceptions import LoyaltyError
from ...models import Message, OutboundEmail, PointsEntry, Redemption, SurveyInvitation
from ..bulk import bulk_set
from .prepare import Batch, Prepared, _load, _prepare
from .queue import CAMPAIGN

logger = logging.getLogger("loyalty.outbox")

Status = OutboundEmail.Status
#: Longest wait between two attempts.
MAX_BACKOFF = timedelta(hours=1)
FIRST_BACKOFF = timedelta(minutes=1)
#: Marks are written at least this often while a batch is being sent.
FLUSH_SECONDS = 0.5
#: The beat task stops taking new batches after this long (it runs again in a minute).
DISPATCH_TIME_BUDGET = 50.0


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
    from ..ledger import points_credit_many

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
    from ..rewards import redemption_cancel

    redemption = Redemption.objects.filter(pk=redemption_id).first()
    if redemption is None:
        return
    try:
        redemption_cancel(redemption=redemption)
    except LoyaltyError as exc:
        logger.warning("The code of redemption %s could not be cancelled: %s", redemption_id, exc)


def _existing_bonus(rows: list[OutboundEmail]) -> dict[str, PointsEntry]:
    """Campaign bonus entries already in the ledger (a resend, a retry after a crash), one query."""
    from ..campaigns import bonus_key

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


def outbox_send_now(*, model: type[models.Model], pk: int, now: datetime | None = None) -> str:
    """Send the email of one queued row of ``model`` (a campaign ``Message``, a ``SurveyInvitation``:
    a ``status`` and an ``email`` link to its outbox row) now, as the workers do in batches. Returns
    the row's status afterwards (``sent``, ``skipped``, ``failed``, or ``queued`` when a mail error
    left it for a later attempt), ``missing`` or ``not_queued``."""
    rows = model.objects.filter(pk=pk)
    found = rows.values_list("status", "email__pk").first()
    if found is None:
        return "missing"
    status, email_id = found
    if status != model.Status.QUEUED or email_id is None:
        return "not_queued"
    if not outbox_dispatch(now=now, ids=[email_id]).get("claimed"):
        return "not_queued"
    return rows.values_list("status", flat=True).first() or "missing"


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
