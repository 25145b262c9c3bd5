"""Points expiry: each credit lot lapses at its ``expires_at``, exactly, by what is left of it."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from ..models import Member, PointsEntry
from .ledger import points_debit


def points_expire_due(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Expire every lot past its date, in batches; returns the number of lots expired.

    The lots due are found with one indexed query per batch; each lot then gets its own
    ``expire`` debit (idempotency key ``expire:<lot id>``), so a rerun never expires twice.
    """
    now = now or timezone.now()
    expired = 0
    while True:
        due = list(
            PointsEntry.objects.filter(points__gt=0, remaining__gt=0, expires_at__lte=now)
            .order_by("expires_at", "id")
            .values_list("id", "member_id")[:batch_size]
        )
        for lot_id, member_id in due:
            expired += _expire_lot(lot_id=lot_id, member_id=member_id, now=now)
        if len(due) < batch_size:
            return expired


def _expire_lot(*, lot_id: int, member_id: int, now: datetime) -> int:
    with transaction.atomic():
        member = Member.objects.select_for_update().select_related("program").get(pk=member_id)
        lot = PointsEntry.objects.filter(pk=lot_id, remaining__gt=0).first()
        if lot is None:  # spent meanwhile
            return 0
        points_debit(
            member=member,
            points=lot.remaining,
            kind=PointsEntry.Kind.EXPIRE,
            idempotency_key=f"expire:{lot.pk}",
            reference=lot.reference,
            description=f"Points from {timezone.localdate(lot.created_at):%Y-%m-%d} expired",
            at=lot.expires_at,
            prefer_lot=lot,
            locked=True,
        )
        return 1
