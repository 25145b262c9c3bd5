"""Reads: what pages, admin, API and commands show. Query counts do not grow with history."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest

from .conf import loyalty_settings
from .models import Member, PointsEntry


@dataclass(frozen=True)
class MemberSummary:
    member: Member
    history: list[PointsEntry]

    @property
    def program(self):
        return self.member.program


def memberships_for_user(user) -> QuerySet[Member]:
    if not getattr(user, "is_authenticated", False):
        return Member.objects.none()
    return Member.objects.filter(user=user, program__is_active=True).select_related("program").order_by("program_id")


def points_history(member: Member, *, limit: int | None = None) -> list[PointsEntry]:
    """The member's newest ledger rows (one query, whatever the ledger's length)."""
    limit = limit or loyalty_settings.ACCOUNT_HISTORY_SIZE
    return list(
        PointsEntry.objects.filter(member=member)
        .only("kind", "points", "reference", "description", "created_at", "expires_at")
        .order_by("-created_at", "-id")[:limit]
    )


def account_summaries(user) -> list[MemberSummary]:
    """What the account panel shows: one query for memberships, one per programme for history."""
    return [MemberSummary(member, points_history(member)) for member in memberships_for_user(user)]


def _sum_of(field: str, **filters) -> Coalesce:
    rows = (
        PointsEntry.objects.filter(member=OuterRef("pk"), **filters)
        .order_by()
        .values("member")
        .annotate(total=Sum(field))
        .values("total")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), Value(0))


def ledger_mismatches() -> QuerySet[Member]:
    """Members whose cached balance or open lots disagree with their ledger (one query)."""
    return (
        Member.objects.annotate(
            ledger_sum=_sum_of("points"),
            open_points=_sum_of("remaining", points__gt=0),
        )
        .filter(~Q(balance=F("ledger_sum")) | ~Q(open_points=Greatest(F("balance"), Value(0))))
        .select_related("program", "user")
        .order_by("pk")
    )
