"""Writing to the outbox: rows inserted in the caller's transaction, keyed uniquely per email,
and one best-effort nudge to the workers after the commit (the only place loyalty hands
work to Celery from a request)."""

from __future__ import annotations

import logging
import time as clock
from datetime import datetime, timedelta
from typing import Any

from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from ...models import Member, OutboundEmail

logger = logging.getLogger("loyalty.outbox")

Status = OutboundEmail.Status
#: ``kind`` of a campaign message and of a survey invitation; a staff alert; else a member template name.
CAMPAIGN = "campaign"
SURVEY = "survey"
STAFF_ALERT = "staff_alert"
#: After a failed nudge, requests stop trying the broker for this long (the beat sweep sends).
NUDGE_PAUSE_SECONDS = 30.0


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
    from ...tasks import dispatch_emails

    try:
        dispatch_emails.apply_async(retry=False)
    except Exception as exc:  # noqa: BLE001  (the broker is down or hung: the emails wait in the outbox)
        _nudge_paused_until = clock.monotonic() + NUDGE_PAUSE_SECONDS
        logger.warning("Could not reach the broker (%s); emails are sent by the next sweep.", exc)
        return False
    return True
