"""The ledger check: members whose cached balance or open lots disagree with their ledger."""

from __future__ import annotations

from django.db.models import F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest

from ..models import Member, PointsEntry


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
