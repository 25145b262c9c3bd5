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

What lives where (every public name is re-exported here, so ``from loyalty.services.outbox
import ...`` keeps working): ``queue`` (writing rows, the nudge after commit: the one place a
request hands work to Celery), ``prepare`` (rendering a claimed row per kind), ``dispatch``
(claiming, sending, marking, expiry, the sweep), ``staff`` (retry, cancel, preview in the admin).
"""

from .dispatch import (
    DISPATCH_TIME_BUDGET,
    FIRST_BACKOFF,
    FLUSH_SECONDS,
    MAX_BACKOFF,
    max_attempts,
    outbox_claim,
    outbox_dispatch,
    outbox_dispatch_due,
    outbox_expire,
    outbox_send_now,
)
from .prepare import (
    Batch,
    Fail,
    Prepared,
    Skip,
)
from .queue import (
    CAMPAIGN,
    NUDGE_PAUSE_SECONDS,
    STAFF_ALERT,
    SURVEY,
    email_queue,
    emails_queue,
    outbox_nudge,
    outbox_nudge_on_commit,
    outbox_row,
)
from .staff import (
    RETRYABLE,
    EmailPreview,
    email_preview,
    emails_cancel,
    emails_retry,
)

__all__ = [
    "Batch",
    "CAMPAIGN",
    "DISPATCH_TIME_BUDGET",
    "EmailPreview",
    "FIRST_BACKOFF",
    "FLUSH_SECONDS",
    "Fail",
    "MAX_BACKOFF",
    "NUDGE_PAUSE_SECONDS",
    "Prepared",
    "RETRYABLE",
    "STAFF_ALERT",
    "SURVEY",
    "Skip",
    "email_preview",
    "email_queue",
    "emails_cancel",
    "emails_queue",
    "emails_retry",
    "max_attempts",
    "outbox_claim",
    "outbox_dispatch",
    "outbox_send_now",
    "outbox_dispatch_due",
    "outbox_expire",
    "outbox_nudge",
    "outbox_nudge_on_commit",
    "outbox_row",
]
