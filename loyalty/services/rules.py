"""Earning rules: bonuses and multiplier campaigns configured in admin.

CONTRACT (wired by services/events.py, receivers.py and tasks.py; keep these signatures):
- ``on_member_joined(*, member, at) -> None``: sign-up bonus (member just enrolled).
- ``on_purchase_paid(*, member, purchase, first: bool) -> None``: first-purchase bonus and
  referral completion; called inside the order event's savepoint, member locked.
- ``award_for_action(member, action_key, reference) -> PointsEntry | None``: public hook.
- ``birthday_bonuses_award(*, today=None) -> int``: daily task.
- ``profile_completed(*, member) -> PointsEntry | None``.
"""

from __future__ import annotations

from datetime import date, datetime

from ..models import Member, PointsEntry, Purchase


def on_member_joined(*, member: Member, at: datetime) -> None:
    return None


def on_purchase_paid(*, member: Member, purchase: Purchase, first: bool) -> None:
    return None


def award_for_action(member: Member, action_key: str, reference: str) -> PointsEntry | None:
    return None


def birthday_bonuses_award(*, today: date | None = None) -> int:
    return 0


def profile_completed(*, member: Member) -> PointsEntry | None:
    return None
