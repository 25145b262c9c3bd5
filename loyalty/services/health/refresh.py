"""The runs: the nightly refresh (start, chunks of load -> score -> store, finish), in one process
or fanned out to Celery workers by ``refresh_health``, and the weekly fit of every programme."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

from django.db import transaction
from django.db.models import Count, F, Max, Min, Q
from django.utils import timezone

from ...conf import loyalty_settings
from ...models import CustomerHealth, HealthModelFit, HealthRun, Member, Program, Segment
from .fit import _current_fit, health_fit_model
from .load import health_cutpoints, health_load
from .policy import THRESHOLD_PREVIEW, health_settings_for
from .score import health_score
from .store import health_store


def health_refresh_start(*, program: Program, now: datetime | None = None, chunk_size: int | None = None):
    """Open a run: breakpoints and model for the whole programme, and the member id ranges to score."""
    now = now or timezone.now()
    fit = _current_fit(program, now)
    run = HealthRun.objects.create(
        program=program,
        started_at=now,
        fit=fit,
        scored_by="bgnbd" if fit.usable else "rules",
        cutpoints=health_cutpoints(program=program, now=now),
    )
    ranges = list(_id_ranges(program, chunk_size or loyalty_settings.HEALTH_CHUNK_SIZE))
    HealthRun.objects.filter(pk=run.pk).update(chunks=len(ranges))
    run.chunks = len(ranges)
    return run, ranges


def _id_ranges(program: Program, size: int) -> Iterator[tuple[int, int]]:
    """Member id ranges of about ``size`` members each (one indexed query per boundary)."""
    members = Member.objects.filter(program=program).order_by("pk").values_list("pk", flat=True)
    bounds = members.aggregate(lo=Min("pk"), hi=Max("pk"))
    if bounds["lo"] is None:
        return
    lo = bounds["lo"]
    while lo is not None and lo <= bounds["hi"]:
        last = members.filter(pk__gte=lo)[size - 1 : size].first()
        hi = last if last is not None else bounds["hi"]
        yield lo, hi
        lo = members.filter(pk__gt=hi).first()


def health_refresh_range(*, run: HealthRun, lo: int, hi: int) -> int:
    """Score members ``lo``..``hi`` of the run's programme and write their health: the stages
    :func:`health_load`, :func:`health_score`, :func:`health_store`. Returns members scored."""
    policy = health_settings_for(run.program)
    data = health_load(run=run, lo=lo, hi=hi, policy=policy)
    if not len(data.member_ids):
        return 0
    scores = health_score(data=data, run=run, policy=policy)
    health_store(program=run.program, now=run.started_at, scores=scores)
    return len(data.member_ids)


def health_refresh_finish(*, run: HealthRun) -> HealthRun:
    """Sum up what the run found (one aggregate query) and close it."""
    rows = CustomerHealth.objects.filter(program=run.program)
    policy = health_settings_for(run.program)
    eligible = (
        Q(orders__gte=policy.min_orders) | Q(m_score=5)
        if policy.high_value_spend is None
        else (Q(orders__gte=policy.min_orders) | Q(total_spent__gte=policy.high_value_spend))
    )
    aggregates = {
        "members": Count("pk"),
        "at_risk": Count("pk", filter=Q(at_risk=True)),
        "flagged_by_model": Count("pk", filter=Q(risk_reason__in=["model", "both"])),
        "flagged_by_gap": Count("pk", filter=Q(risk_reason__in=["gap", "both"])),
        "eligible": Count("pk", filter=eligible),
        **{
            f"t{threshold}": Count("pk", filter=eligible & Q(p_lapse__gt=threshold))
            for threshold in (*THRESHOLD_PREVIEW, float(policy.lapse_threshold))
        },
    }
    totals = rows.aggregate(**aggregates)
    counts = dict(rows.values_list("segment").annotate(n=Count("pk")).values_list("segment", "n"))
    run.members = totals["members"]
    run.at_risk = totals["at_risk"]
    run.flagged_by_model = totals["flagged_by_model"]
    run.flagged_by_gap = totals["flagged_by_gap"]
    run.eligible = totals["eligible"]
    if run.scored_by == "bgnbd" and run.eligible:
        run.threshold_shares = {
            f"{threshold:.3f}": round(totals[f"t{threshold}"] / run.eligible, 4)
            for threshold in sorted({*THRESHOLD_PREVIEW, float(policy.lapse_threshold)})
        }
    run.segment_counts = {segment: counts.get(segment, 0) for segment in Segment.values}
    run.finished_at = timezone.now()
    run.seconds = (run.finished_at - run.started_at).total_seconds()
    run.save()
    return run


def health_refresh(*, program: Program, now: datetime | None = None, chunk_size: int | None = None) -> HealthRun:
    """Refresh every member's health in this process, chunk after chunk."""
    clock = time.perf_counter()
    run, ranges = health_refresh_start(program=program, now=now, chunk_size=chunk_size)
    for lo, hi in ranges:
        health_refresh_range(run=run, lo=lo, hi=hi)
    HealthRun.objects.filter(pk=run.pk).update(chunks_done=len(ranges))
    run.chunks_done = len(ranges)
    run = health_refresh_finish(run=run)
    if now is not None:  # a backdated run: report wall time, not "now minus the chosen date"
        run.seconds = time.perf_counter() - clock
        HealthRun.objects.filter(pk=run.pk).update(seconds=run.seconds)
    return run


def health_chunk_done(*, run_id: int) -> HealthRun | None:
    """Count a finished chunk; the last one closes the run. Row-locked so exactly one caller finishes."""
    with transaction.atomic():
        run = HealthRun.objects.select_for_update().select_related("program").filter(pk=run_id).first()
        if run is None:
            return None
        run.chunks_done += 1
        HealthRun.objects.filter(pk=run.pk).update(chunks_done=F("chunks_done") + 1)
        if run.chunks_done < run.chunks:
            return None
    return health_refresh_finish(run=run)


def health_refresh_all(*, now: datetime | None = None) -> list[HealthRun]:
    return [health_refresh(program=program, now=now) for program in Program.objects.filter(is_active=True)]


def health_fit_all(*, now: datetime | None = None) -> list[HealthModelFit]:
    return [health_fit_model(program=program, now=now) for program in Program.objects.filter(is_active=True)]
