"""Customer health reads for admin: the latest fit and run, who moved into a segment, who is at risk."""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, QuerySet

from ..models import CustomerHealth, HealthModelFit, HealthRun, SegmentChange


def latest_health_fit(*, program) -> HealthModelFit | None:
    return HealthModelFit.objects.filter(program=program).order_by("-fitted_at", "-id").first()


def latest_health_run(*, program) -> HealthRun | None:
    return HealthRun.objects.filter(program=program).order_by("-started_at", "-id").first()


def default_health_program():
    """The programme whose health admin pages describe when none is chosen: the oldest active one."""
    from ..models import Program

    return Program.objects.filter(is_active=True).order_by("created_at", "pk").first()


def members_moved_into(*, program, segment: str, since: datetime) -> QuerySet[SegmentChange]:
    """Who entered ``segment`` since ``since`` (e.g. "at risk this week"), newest first."""
    return (
        SegmentChange.objects.filter(program=program, to_segment=segment, changed_at__gte=since)
        .select_related("member__user")
        .order_by("-changed_at", "-id")
    )


def at_risk_members(*, program) -> QuerySet[CustomerHealth]:
    """Members flagged at risk, most likely to lapse first."""
    return (
        CustomerHealth.objects.filter(program=program, at_risk=True)
        .select_related("member__user")
        .order_by(F("p_lapse").desc(nulls_last=True), "-recency_days")
    )
