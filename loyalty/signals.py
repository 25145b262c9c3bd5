"""Signals loyalty sends, for shops to hook into. All are sent after the transaction commits.

- ``points_awarded(sender=Member, member, entry)``: points were credited (earn, bonus,
  positive adjustment).
- ``points_debited(sender=Member, member, entry)``: points were taken away (reversal,
  negative adjustment, redemption, expiry).
- ``tier_changed(sender=Member, member, change)``: the member moved to another tier
  (``change`` is the :class:`~loyalty.models.TierChange`, up or down).
- ``members_at_risk(sender=Program, program, member_ids)``: the nightly health refresh moved
  these members into the "at risk" segment (one signal per refreshed chunk, ids as a list).
- ``member_detractor(sender=Member, member, response)``: a high-value member answered a
  survey as a detractor (NPS 0-6 or CSAT 1-2; ``response`` is the
  :class:`~loyalty.models.SurveyResponse`). Sent once per response, so someone can reach out.
- ``event_failed(sender=OrderEvent, event, error)``: an order event could not be processed
  and waits for a retry (``event.status == "failed"``) or was given up (``"gave_up"``).
"""

import logging

from django.db import transaction
from django.dispatch import Signal

# Receiver failures are reported where order-event problems are (documented in docs/events.md).
logger = logging.getLogger("loyalty.events")

points_awarded = Signal()
points_debited = Signal()
event_failed = Signal()
tier_changed = Signal()
members_at_risk = Signal()
member_detractor = Signal()


def send_on_commit(signal: Signal, **kwargs) -> None:
    """Send ``signal`` once the current transaction commits, never raising into the caller.

    Receivers run after the shop's change is committed: an exception there cannot undo it,
    so it is logged rather than propagated.
    """

    transaction.on_commit(lambda: send_now(signal, **kwargs))


def send_now(signal: Signal, **kwargs) -> None:
    """Send ``signal`` to every receiver; a receiver's exception is logged, never raised."""
    for receiver, result in signal.send_robust(**kwargs):
        if isinstance(result, Exception):
            logger.error("A receiver of a loyalty signal failed: %r", receiver, exc_info=result)
