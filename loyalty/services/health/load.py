"""Stage *load*: the SQL that turns purchases, members and survey answers into numpy arrays.

One statement per chunk of member ids (purchase aggregates and the latest detractor answer),
one for all buyers (the weekly fit), one for the RFM breakpoints; the at-risk model's optional
features one query per kind over the chunk's id range. No query runs per member."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import connection
from django.db.models import Count, Min, Q

from ...health import risk
from ...models import HealthRun, HealthSettings, Member, Message, Program, Purchase, Redemption, SurveyResponse
from .policy import COUNTED_STATUSES, DAY, SURVEY_FEATURE_DAYS, WEEK_DAYS, health_settings_for


def _epoch_days(column: str) -> str:
    # Once per member, as a float: date_part() gives the double that CAST(EXTRACT(EPOCH ...)) gives
    # (both correctly rounded), without EXTRACT's numeric and its conversion through text.
    if connection.vendor == "postgresql":
        return f"(date_part('epoch', {column}) / 86400.0)"
    if connection.vendor == "sqlite":
        return f"(julianday({column}) - 2440587.5)"
    return f"(UNIX_TIMESTAMP({column}) / 86400.0)"


def _day(column: str) -> str:
    """The UTC date of a timestamp."""
    if connection.vendor == "postgresql":  # a fixed offset: no time zone looked up by name per purchase
        return f"CAST({column} AT TIME ZONE INTERVAL '00:00' AS DATE)"
    return f"DATE({column})"


def _purchase_days(column: str) -> str:
    """How many UTC dates a member's purchases fall on."""
    day = _day(column)
    if connection.vendor == "postgresql":
        # PostgreSQL sorts each member's input to a DISTINCT aggregate. The purchase index hands it
        # over newest first, so sorting by date descending finds it already in order.
        return f"COUNT(DISTINCT {day} ORDER BY {day} DESC)"
    return f"COUNT(DISTINCT {day})"


def _net_spend() -> str:
    if connection.vendor == "postgresql":  # exact numeric sums: two of them cost less than a subtraction per row
        return "CAST(SUM(p.amount) - SUM(p.refunded_amount) AS DOUBLE PRECISION)"
    return "CAST(SUM(p.amount - p.refunded_amount) AS DOUBLE PRECISION)"  # SQLite sums floats: keep the order


def _purchases_sql(where: str) -> str:
    """Per-member purchase aggregates: first/last purchase (epoch days), orders, purchase days, net spend.

    One pass over the covering index ``loyalty_purchase_member_recent`` (see docs/health.md, Scale)."""
    occurred = "p.occurred_at"
    return f"""
        SELECT p.member_id AS member_id,
               {_epoch_days(f"MIN({occurred})")} AS first_day,
               {_epoch_days(f"MAX({occurred})")} AS last_day,
               COUNT(*) AS orders,
               {_purchase_days(occurred)} AS days,
               {_net_spend()} AS spent
          FROM {Purchase._meta.db_table} p
         WHERE p.program_id = %s AND p.member_id IS NOT NULL AND p.status IN (%s, %s)
           AND p.occurred_at <= %s {where}
         GROUP BY p.member_id
    """


def _status_params() -> list[str]:
    return [str(status) for status in COUNTED_STATUSES]


def _floor(expression: str) -> str:
    return f"FLOOR({expression})" if connection.vendor != "sqlite" else f"CAST({expression} AS INTEGER)"


def health_cutpoints(*, program: Program, now: datetime) -> dict:
    """Per RFM dimension, the smallest value that earns each score 1-5, and the median gap between orders.

    Window functions over the programme's buyers: a value's score is the quintile of the middle
    of the rank span its ties occupy (see ``rfm.midpoint_quintile``). Recency is compared by day
    and spend by whole currency units, so chunks scored later agree exactly.
    """
    gap = "CASE WHEN days > 1 THEN (last_day - first_day) / (days - 1) END"
    score = _floor("5.0 * (le - cnt / 2.0) / n")
    sql = f"""
        WITH agg AS ({_purchases_sql("")}),
        dims AS (
            SELECT 'r' AS dim, {_floor("last_day")} AS v FROM agg
            UNION ALL SELECT 'f', orders FROM agg
            UNION ALL SELECT 'm', {_floor("spent")} FROM agg
        ),
        counts AS (SELECT dim, v, COUNT(*) AS cnt FROM dims GROUP BY dim, v),
        ranked AS (
            SELECT dim, v, cnt,
                   SUM(cnt) OVER (PARTITION BY dim ORDER BY v) AS le,
                   SUM(cnt) OVER (PARTITION BY dim) AS n
              FROM counts
        ),
        gaps AS (SELECT {gap} AS gap FROM agg),
        halves AS (SELECT gap, NTILE(2) OVER (ORDER BY gap) AS half FROM gaps WHERE gap IS NOT NULL)
        SELECT dim, 1 + {score} AS score, MIN(v) FROM ranked GROUP BY dim, 1 + {score}
        UNION ALL SELECT 'g', half, MAX(gap) FROM halves GROUP BY half
    """
    bounds: dict[str, dict[str, float]] = {"r": {}, "f": {}, "m": {}, "g": {}}
    with connection.cursor() as cursor:
        cursor.execute(sql, [program.pk, *_status_params(), now])
        for dim, tile, value in cursor.fetchall():
            bounds[dim][str(min(int(tile), 5))] = float(value)
    result: dict = {dim: bounds[dim] for dim in ("r", "f", "m")}
    result["median_gap_days"] = bounds["g"].get("1")
    return result


@dataclass
class ChunkData:
    member_ids: np.ndarray
    first_day: np.ndarray  # NaN for members who never bought
    last_day: np.ndarray
    orders: np.ndarray
    days: np.ndarray
    spent: np.ndarray
    detractor_day: np.ndarray | None = None  # latest recent detractor answer (epoch days), NaN: none
    customers: risk.Customers | None = None  # the at-risk model's inputs, when the run's model uses features

    @property
    def buyers(self) -> np.ndarray:
        return self.orders > 0


def _detractors_sql() -> str:
    """Per member, the latest detractor answer (epoch days) in ``(since, now]``.

    Uses the (member, -submitted_at) index: the chunk's id range, newest first.
    """
    return f"""
        SELECT r.member_id AS member_id, {_epoch_days("MAX(r.submitted_at)")} AS detractor_day
          FROM {SurveyResponse._meta.db_table} r
         WHERE r.program_id = %s AND r.is_detractor = %s AND r.member_id BETWEEN %s AND %s
           AND r.submitted_at > %s AND r.submitted_at <= %s
         GROUP BY r.member_id
    """


def _load_chunk(program: Program, now: datetime, lo: int, hi: int, *, detractor_days: int = 0) -> ChunkData:
    sql = f"""
        SELECT m.id, agg.first_day, agg.last_day, agg.orders, agg.days, agg.spent, d.detractor_day
          FROM {Member._meta.db_table} m
          LEFT JOIN ({_purchases_sql("AND p.member_id BETWEEN %s AND %s")}) agg ON agg.member_id = m.id
          LEFT JOIN ({_detractors_sql()}) d ON d.member_id = m.id
         WHERE m.program_id = %s AND m.id BETWEEN %s AND %s
         ORDER BY m.id
    """
    since = now - timedelta(days=detractor_days)
    params = [program.pk, *_status_params(), now, lo, hi, program.pk, True, lo, hi, since, now, program.pk, lo, hi]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        empty = np.empty(0)
        return ChunkData(np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty, empty)
    ids, first, last, orders, days, spent, detractor = zip(*rows, strict=True)
    as_float = lambda values: np.array([np.nan if v is None else float(v) for v in values])  # noqa: E731
    return ChunkData(
        member_ids=np.array(ids, dtype=np.int64),
        first_day=as_float(first),
        last_day=as_float(last),
        orders=np.nan_to_num(as_float(orders)).astype(np.int64),
        days=np.nan_to_num(as_float(days)).astype(np.int64),
        spent=np.nan_to_num(as_float(spent)),
        detractor_day=as_float(detractor),
    )


def health_load_buyers(*, program: Program, now: datetime) -> ChunkData:
    """Stage *load* of the weekly fit: every buyer's purchase aggregates as of ``now`` (one statement)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT member_id, first_day, last_day, orders, days, spent FROM ({_purchases_sql('')}) agg",
            [program.pk, *_status_params(), now],
        )
        rows = cursor.fetchall()
    if not rows:
        empty = np.empty(0)
        return ChunkData(np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty)
    columns = [np.array(col, dtype=float) for col in zip(*rows, strict=True)]
    return ChunkData(
        columns[0].astype(np.int64),
        columns[1],
        columns[2],
        columns[3].astype(np.int64),
        columns[4].astype(np.int64),
        columns[5],
    )


def _model_inputs(data: ChunkData, now_day: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD's (x, t_x, T) in weeks: repeat purchase days, time of the last one, age."""
    x = np.maximum(data.days - 1, 0).astype(float)
    t_x = np.maximum(data.last_day - data.first_day, 0.0) / WEEK_DAYS
    age = np.maximum(now_day - data.first_day, 0.0) / WEEK_DAYS
    return x, np.minimum(t_x, age), age


def health_customers(
    *, program: Program, data: ChunkData, now: datetime, features: tuple[str, ...] | None = None
) -> risk.Customers:
    """The at-risk model's inputs for ``data``'s buyers as of ``now``: BG/NBD's (x, t_x, T) and the optional
    features (``risk.OPTIONAL_FEATURES``) from the shop's own tables, one query per kind over the members'
    id range. ``features``: only load what a fitted model uses (None: everything, for the weekly fit).
    A shop without a kind of data gets zeros, and the fit leaves that feature out."""
    buyers = data.buyers
    ids = data.member_ids[buyers]
    sub = ChunkData(*(getattr(data, f)[buyers] for f in ("member_ids", "first_day", "last_day", "orders", "days",
                                                         "spent")))  # fmt: skip
    x, t_x, age = _model_inputs(sub, now.timestamp() / DAY)
    wanted = set(risk.OPTIONAL_FEATURES) | {"category"} if features is None else set(features)
    if any(name.startswith(risk.CATEGORY_PREFIX) for name in wanted):
        wanted.add("category")
    extras: dict[str, np.ndarray] = {}
    if not len(ids):
        return risk.Customers(x, t_x, age, value=sub.spent)
    lo, hi = int(ids.min()), int(ids.max())

    def flags(member_ids) -> np.ndarray:
        return np.isin(ids, np.fromiter(member_ids, dtype=np.int64))

    if "category" in wanted:
        firsts = dict(
            Purchase.objects.filter(
                program=program, member_id__gte=lo, member_id__lte=hi, status__in=COUNTED_STATUSES, occurred_at__lte=now
            )
            .exclude(category="")
            .values("member_id")
            .annotate(category=Min("category"))
            .order_by()
            .values_list("member_id", "category")
        )
        extras["category"] = np.array([firsts.get(i, "") for i in ids.tolist()], dtype=object)
    if "used_code" in wanted:
        used = Redemption.objects.filter(program=program, member_id__gte=lo, member_id__lte=hi, used_at__lte=now)
        extras["used_code"] = flags(used.values_list("member_id", flat=True).distinct().order_by())
    if "enrolled_before" in wanted:  # epoch days straight from SQL: no datetime object per member
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, {_epoch_days('joined_at')} FROM {Member._meta.db_table}"
                " WHERE id BETWEEN %s AND %s ORDER BY id",
                [lo, hi],
            )
            rows = cursor.fetchall()
        member_ids = np.array([row[0] for row in rows], dtype=np.int64)
        joined_day = np.array([np.nan if row[1] is None else float(row[1]) for row in rows])
        at = np.minimum(np.searchsorted(member_ids, ids), max(len(member_ids) - 1, 0))
        known = (member_ids[at] == ids) if len(member_ids) else np.zeros(len(ids), dtype=bool)
        now_day = now.timestamp() / DAY
        extras["enrolled_weeks"] = np.where(known, (now_day - joined_day[at]) / WEEK_DAYS, np.nan)
    email = [name for name in ("opened", "clicked", "unsubscribed") if name in wanted]
    if email:
        rows = (
            Message.objects.filter(program=program, member_id__gte=lo, member_id__lte=hi)
            .values("member_id")
            .annotate(**{name: Count("pk", filter=Q(**{f"{name}_at__lte": now})) for name in email})
            .order_by()
        )
        counts = {row["member_id"]: row for row in rows}
        for name in email:
            extras[name] = flags(i for i, row in counts.items() if row[name])
    if "survey_answered" in wanted:
        answered = SurveyResponse.objects.filter(  # detractors have their own learnt weight (fit_offset)
            program=program,
            is_detractor=False,
            member_id__gte=lo,
            member_id__lte=hi,
            submitted_at__gt=now - timedelta(days=SURVEY_FEATURE_DAYS),
            submitted_at__lte=now,
        )
        extras["survey_answered"] = flags(answered.values_list("member_id", flat=True).distinct().order_by())
    return risk.Customers(x, t_x, age, value=sub.spent, **extras)


def health_load(*, run: HealthRun, lo: int, hi: int, policy: HealthSettings | None = None) -> ChunkData:
    """Stage *load* of a refresh chunk: members ``lo``..``hi`` of the run's programme, their purchase
    aggregates and latest detractor answer (one statement), and the at-risk model's features when
    the run's model uses any (``data.customers``)."""
    program, now = run.program, run.started_at
    policy = policy or health_settings_for(program)
    data = _load_chunk(program, now, lo, hi, detractor_days=policy.detractor_days)
    fit = run.fit
    if len(data.member_ids) and fit is not None and fit.usable and fit.risk_model and data.buyers.any():
        features = risk.RiskModel.from_dict(fit.risk_model).features
        data.customers = health_customers(program=program, data=data, now=now, features=features)
    return data
