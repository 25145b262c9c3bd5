"""Signals loyalty sends, for shops to hook into. All are sent after the transaction commits.

- ``points_awarded(sender=Member, member, entry)``: points were credited (earn, bonus,
  positive adjustment).
- ``points_debited(sender=Member, member, entry)``: points were taken away (reversal,
  negative adjustment, redemption, expiry).
- ``tier_changed(sender=Member, member, change)``: the member moved to another tier
  (``change`` is the :class:`~loyalty.models.TierChange`, up or down).
- ``event_failed(sender=OrderEvent, event, error)``: an order event could not be processed
  and waits for a retry (``event.status == "failed"``) or was given up (``"gave_up"``).
"""

from django.dispatch import Signal

points_awarded = Signal()
points_debited = Signal()
event_failed = Signal()
tier_changed = Signal()
