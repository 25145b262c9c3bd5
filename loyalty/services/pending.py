"""Pending points: a purchase's points wait out the programme's approval period (the return
window) outside the balance; a refund inside it shrinks or cancels them, no reversal needed."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..models import Member, PendingPoints, Program, Purchase
from .notifications import member_email_queue


def pending_until(program: Program, paid_at: datetime) -> datetime | None:
    """When points of a purchase paid at ``paid_at`` become spendable; ``None``: already."""
    if not program.pending_days:
        return None
    approve_at = paid_at + timedelta(days=program.pending_days)
    return approve_at if approve_at > timezone.now() else None


def pending_add(*, member: Member, purchase: Purchase, member_updates: dict | None = None) -> PendingPoints:
    """Hold ``purchase.points_earned`` as pending (member locked by the caller)."""
    pending = PendingPoints.objects.create(
        program_id=purchase.program_id,
        member=member,
        purchase=purchase,
        points=purchase.points_earned,
        approve_at=pending_until(member.program, purchase.occurred_at),
    )
    Member.objects.filter(pk=member.pk).update(
        pending_points=F("pending_points") + pending.points, **(member_updates or {})
    )
    member.pending_points += pending.points
    return pending


def pending_reduce_to(purchase: Purchase, points: int) -> bool:
    """Shrink the purchase's still-pending points to ``points``; ``False`` if none are pending."""
    pending = PendingPoints.objects.select_for_update().filter(purchase=purchase, status="pending").first()
    if pending is None:
        return False
    points = max(points, 0)
    delta = pending.points - points
    pending.points = points
    if points == 0:
        pending.status = PendingPoints.Status.CANCELLED
    pending.save(update_fields=["points", "status"])
    Member.objects.filter(pk=pending.member_id).update(pending_points=F("pending_points") - delta)
    return True


def pending_approve_due(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Credit pending points whose approval period is over (daily or hourly beat task)."""
    from .events import earn_for_purchase
    from .rules import on_purchase_paid
    from .tiers import tier_evaluate

    now = now or timezone.now()
    approved = 0
    while True:
        due = list(
            PendingPoints.objects.filter(status=PendingPoints.Status.PENDING, approve_at__lte=now)
            .order_by("approve_at", "id")
            .values_list("id", flat=True)[:batch_size]
        )
        for pending_id in due:
            with transaction.atomic():
                pending = (
                    PendingPoints.objects.select_for_update()
                    .select_related("purchase")
                    .filter(pk=pending_id, status=PendingPoints.Status.PENDING)
                    .first()
                )
                if pending is None:
                    continue
                member = Member.objects.select_for_update().select_related("program").get(pk=pending.member_id)
                purchase = pending.purchase
                purchase.member = member
                purchase.points_earned = pending.points  # what is left after refunds inside the period
                entry = earn_for_purchase(
                    purchase=purchase,
                    within_event=True,
                    at=pending.approve_at,
                    member_updates={"pending_points": F("pending_points") - pending.points},
                )
                pending.status, pending.entry = PendingPoints.Status.APPROVED, entry
                pending.save(update_fields=["status", "entry"])
                on_purchase_paid(
                    member=member, purchase=purchase, first=_is_first_kept_purchase(purchase), notify_earned=False
                )
                if pending.points > 0:
                    member_email_queue(
                        member=member,
                        template="pending_approved",
                        key=f"pending-approved:{pending.pk}",
                        context={"points": pending.points, "order": purchase.order_reference},
                    )
                tier_evaluate(member=member, at=pending.approve_at, upgrades_only=True)
                approved += 1
        if len(due) < batch_size:
            return approved


def _is_first_kept_purchase(purchase: Purchase) -> bool:
    """No earlier purchase of the member's was kept (paid and not wholly refunded or cancelled)."""
    kept = (Purchase.Status.PAID, Purchase.Status.PARTIALLY_REFUNDED)
    return not (
        Purchase.objects.filter(member_id=purchase.member_id, status__in=kept, occurred_at__lt=purchase.occurred_at)
        .exclude(pk=purchase.pk)
        .exists()
    )
