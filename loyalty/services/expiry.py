"""Points expiry, by the programme's policy:

- per lot: each credit lapses ``points_lifetime_days`` after it was earned, by exactly what is
  left of it (debits consume the soonest-expiring lots first, so the due lots go first);
- inactivity: the whole balance lapses ``inactivity_days`` after the member's last purchase;
- never.

Both daily tasks are set-based: one grouped query finds the members concerned, then each
member gets one ``expire`` entry per run (idempotent by key: a rerun changes nothing).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import CharField, Count, Exists, Max, Min, OuterRef, Q, Sum, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from ..models import EmailReceipt, Member, PointsEntry, Program
from .ledger import points_debit
from .notifications import member_email_queue

Policy = Program.ExpiryPolicy


def points_expire_due(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Expire what is due under both policies; returns the number of members affected."""
    now = now or timezone.now()
    return _expire_lots(now, batch_size) + _expire_inactive(now, batch_size)


def _expire_lots(now: datetime, batch_size: int) -> int:
    due = (
        PointsEntry.objects.filter(
            points__gt=0,
            remaining__gt=0,
            expires_at__lte=now,
            program__expiry_policy=Policy.PER_LOT,
        )
        .values("member_id")
        .annotate(last_lot=Max("id"))
        .order_by("member_id")
    )
    expired = 0
    for row in due.iterator(chunk_size=batch_size):
        with transaction.atomic():
            member = Member.objects.select_for_update().select_related("program").get(pk=row["member_id"])
            lots = PointsEntry.objects.filter(member=member, points__gt=0, remaining__gt=0, expires_at__lte=now)
            summary = lots.aggregate(points=Sum("remaining"), lots=Count("id"), oldest=Min("created_at"))
            if not summary["points"]:
                continue  # spent meanwhile
            points_debit(
                member=member,
                points=summary["points"],
                kind=PointsEntry.Kind.EXPIRE,
                idempotency_key=f"expire:{member.pk}:lots-to:{row['last_lot']}",
                description=f"{summary['lots']} lot(s) earned since "
                f"{timezone.localdate(summary['oldest']):%Y-%m-%d} expired",
                at=now,
                locked=True,
            )
            expired += 1
    return expired


def _expire_inactive(now: datetime, batch_size: int) -> int:
    expired = 0
    for program in Program.objects.filter(expiry_policy=Policy.INACTIVITY, inactivity_days__isnull=False):
        cutoff = now - timedelta(days=program.inactivity_days)
        members = (
            Member.objects.filter(program=program, balance__gt=0)
            .filter(Q(last_purchase_at__lte=cutoff) | Q(last_purchase_at__isnull=True, joined_at__lte=cutoff))
            .values_list("id", flat=True)
            .order_by("id")
        )
        for member_id in members.iterator(chunk_size=batch_size):
            with transaction.atomic():
                member = Member.objects.select_for_update().select_related("program").get(pk=member_id)
                if member.balance <= 0:
                    continue
                since = member.last_purchase_at or member.joined_at
                newest = PointsEntry.objects.filter(member=member).aggregate(newest=Max("id"))["newest"]
                points_debit(
                    member=member,
                    points=member.balance,
                    kind=PointsEntry.Kind.EXPIRE,
                    # once per inactivity spell and ledger state: credits added later (say a
                    # staff adjustment) expire on the next run, not with the next purchase
                    idempotency_key=f"expire:{member.pk}:inactive-since:{since:%Y%m%d%H%M%S}:to:{newest}",
                    description=f"Balance expired after {program.inactivity_days} days without a purchase",
                    at=now,
                    locked=True,
                )
                expired += 1
    return expired


def expiry_reminders_send(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Email members whose points expire within the programme's reminder period, once per lot."""
    now = now or timezone.now()
    reminded = 0
    for program in Program.objects.filter(expiry_policy=Policy.PER_LOT, expiry_reminder_days__gt=0, is_active=True):
        horizon = now + timedelta(days=program.expiry_reminder_days)
        due = (
            PointsEntry.objects.filter(
                program=program,
                points__gt=0,
                remaining__gt=0,
                expires_at__gt=now,
                expires_at__lte=horizon,
                expiry_reminded_at__isnull=True,
            )
            .values("member_id")
            .annotate(points=Sum("remaining"), first_expiry=Min("expires_at"), last_lot=Max("id"))
            .order_by("member_id")
        )
        for row in due.iterator(chunk_size=batch_size):
            with transaction.atomic():
                marked = PointsEntry.objects.filter(
                    member_id=row["member_id"],
                    id__lte=row["last_lot"],
                    points__gt=0,
                    remaining__gt=0,
                    expires_at__lte=horizon,
                    expiry_reminded_at__isnull=True,
                ).update(expiry_reminded_at=now)
                if not marked:
                    continue  # another run took them
                member = Member.objects.get(pk=row["member_id"])
                member_email_queue(
                    member=member,
                    template="points_expiring",
                    key=f"points-expiring:member:{member.pk}:lot:{row['last_lot']}",
                    context={"points": row["points"], "expires_on": f"{timezone.localdate(row['first_expiry'])}"},
                )
                reminded += 1
    return reminded


LAST_CHANCE_KEY = "last-chance:lot:"


def expiry_last_chance_send(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """The second, last-chance reminder ``expiry_last_chance_days`` before lots expire: a
    marketing email, so only members with consent. Once per lot, marked by an ``EmailReceipt``
    keyed ``last-chance:lot:<id>`` (the ledger is not touched). Returns the members emailed."""
    now = now or timezone.now()
    reminded = 0
    programs = Program.objects.filter(expiry_policy=Policy.PER_LOT, expiry_last_chance_days__gt=0, is_active=True)
    for program in programs:
        horizon = now + timedelta(days=program.expiry_last_chance_days)
        marked = EmailReceipt.objects.filter(
            member_id=OuterRef("member_id"),
            key=Concat(Value(LAST_CHANCE_KEY), Cast(OuterRef("pk"), output_field=CharField())),
        )
        lots = PointsEntry.objects.filter(
            program=program, points__gt=0, remaining__gt=0, expires_at__gt=now, expires_at__lte=horizon
        ).filter(~Exists(marked))
        due = (
            lots.filter(member__marketing_consent=True)
            .order_by("member_id")
            .values_list("member_id", flat=True)
            .distinct()
        )
        for member_id in due.iterator(chunk_size=batch_size):
            with transaction.atomic():
                member = Member.objects.select_for_update().select_related("program").get(pk=member_id)
                found = list(lots.filter(member_id=member_id).values_list("pk", "remaining", "expires_at"))
                if not found:
                    continue  # another run took them, or they were spent
                EmailReceipt.objects.bulk_create(
                    EmailReceipt(
                        program=program,
                        member=member,
                        key=f"{LAST_CHANCE_KEY}{pk}",
                        template="points_last_chance",
                        created_at=now,
                    )
                    for pk, _remaining, _expires in found
                )
                member_email_queue(
                    member=member,
                    template="points_last_chance",
                    key=f"last-chance:member:{member.pk}:lot:{max(pk for pk, _r, _e in found)}",
                    context={
                        "points": sum(remaining for _pk, remaining, _expires in found),
                        "expires_on": f"{timezone.localdate(min(expires for _pk, _r, expires in found))}",
                    },
                )
                reminded += 1
    return reminded
