"""Stage *store*: a chunk's scores written in bulk, segment changes recorded and moves into at
risk announced (``COPY`` + ``INSERT ... ON CONFLICT`` on PostgreSQL, ``bulk_create`` elsewhere)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from ... import signals
from ...models import CustomerHealth, Program, Segment, SegmentChange
from .policy import DAY
from .score import Scores

FIELDS = [
    "orders", "frequency", "first_purchase_at", "last_purchase_at", "recency_days", "age_days", "typical_gap_days",
    "total_spent", "monetary", "r_score", "f_score", "m_score", "p_alive", "p_lapse", "expected_purchases",
    "expected_next_order_on", "predicted_clv", "segment", "segment_since", "at_risk", "risk_reason", "scored_by",
    "computed_at", "detractor_at",
]  # fmt: skip


def _rows(program: Program, now: datetime, scores: Scores) -> Iterator[tuple]:
    """One tuple per member in ``FIELDS`` order (after member_id, program_id); Python values."""
    c = scores.columns
    utc = timezone.get_fixed_timezone(0)

    def when(day: float) -> datetime | None:
        return None if np.isnan(day) else datetime.fromtimestamp(day * DAY, tz=utc)

    def num(value: float, digits: int | None = None):
        if np.isnan(value):
            return None
        return round(float(value), digits) if digits is not None else float(value)

    def money(value: float) -> Decimal | None:
        return None if np.isnan(value) else Decimal(f"{value:.2f}")

    def score(value: int) -> int | None:
        return int(value) or None

    for i, member_id in enumerate(scores.data.member_ids.tolist()):
        next_day = c["next_order_day"][i]
        yield (
            member_id,
            program.pk,
            int(c["orders"][i]),
            int(c["frequency"][i]),
            when(c["first_day"][i]),
            when(c["last_day"][i]),
            None if np.isnan(c["recency_days"][i]) else int(c["recency_days"][i]),
            None if np.isnan(c["age_days"][i]) else int(c["age_days"][i]),
            num(c["typical_gap_days"][i], 2),
            money(c["total_spent"][i]),
            money(c["monetary"][i]),
            score(c["r_score"][i]),
            score(c["f_score"][i]),
            score(c["m_score"][i]),
            num(c["p_alive"][i], 6),
            num(c["p_lapse"][i], 6),
            num(c["expected_purchases"][i], 6),
            None if np.isnan(next_day) else when(next_day).date(),
            money(c["predicted_clv"][i]),
            c["segment"][i],
            now,  # segment_since: kept when the segment did not change (see the writers)
            bool(c["at_risk"][i]),
            c["risk_reason"][i],
            c["scored_by"][i],
            now,
            when(c["detractor_day"][i]),
        )


def health_store(*, program: Program, now: datetime, scores: Scores) -> list[int]:
    """Stage *store*: write a chunk's scores in one transaction, record segment changes, and announce
    the members who moved into at risk (``members_at_risk``, on commit). Returns their ids."""
    with transaction.atomic():
        moved_to_risk = _write(program=program, now=now, scores=scores)
    if moved_to_risk:
        signals.send_on_commit(signals.members_at_risk, sender=Program, program=program, member_ids=moved_to_risk)
    return moved_to_risk


def _write(*, program: Program, now: datetime, scores: Scores) -> list[int]:
    if connection.vendor == "postgresql":
        return _write_postgresql(program, now, scores)
    return _write_generic(program, now, scores)


def _write_generic(program: Program, now: datetime, scores: Scores) -> list[int]:
    ids = scores.data.member_ids.tolist()
    existing = CustomerHealth.objects.filter(member_id__gte=ids[0], member_id__lte=ids[-1], program=program)
    before = {
        member_id: (segment, since)
        for member_id, segment, since in existing.values_list("member_id", "segment", "segment_since")
    }
    objects, changes, moved_to_risk = [], [], []
    for row in _rows(program, now, scores):
        values = dict(zip(["member_id", "program_id", *FIELDS], row, strict=True))
        old, old_since = before.get(values["member_id"], (None, None))
        if old == values["segment"]:
            values["segment_since"] = old_since
        else:
            changes.append(
                SegmentChange(
                    program_id=program.pk,
                    member_id=values["member_id"],
                    from_segment=old or "",
                    to_segment=values["segment"],
                    changed_at=now,
                )
            )
            if values["segment"] == Segment.AT_RISK:
                moved_to_risk.append(values["member_id"])
        objects.append(CustomerHealth(**values))
    CustomerHealth.objects.bulk_create(
        objects,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["member"],
        update_fields=["program", *FIELDS],
    )
    SegmentChange.objects.bulk_create(changes, batch_size=1000)
    return moved_to_risk


# Raw columns as scored (numpy), in COPY order; the INSERT below converts them to the model's types.
RAW_COLUMNS = [
    ("member_id", "int8"), ("orders", "int8"), ("frequency", "int8"), ("first_day", "float8"),
    ("last_day", "float8"), ("recency_days", "float8"), ("age_days", "float8"), ("typical_gap_days", "float8"),
    ("total_spent", "float8"), ("monetary", "float8"), ("r_score", "int8"), ("f_score", "int8"),
    ("m_score", "int8"), ("p_alive", "float8"), ("p_lapse", "float8"), ("expected_purchases", "float8"),
    ("next_order_day", "float8"), ("predicted_clv", "float8"), ("segment", "text"), ("at_risk", "bool"),
    ("risk_reason", "text"), ("detractor_day", "float8"),
]  # fmt: skip


RAW_TYPES = {"int8": np.int64, "float8": float, "text": object, "bool": bool}


def _write_postgresql(program: Program, now: datetime, scores: Scores) -> list[int]:
    """Binary ``COPY`` of the raw numpy columns into a temporary table, then in SQL: record segment
    changes and upsert, converting types (epoch days to timestamps, floats to rounded decimals).

    No Python work per member beyond handing the values to the driver.
    """
    table = CustomerHealth._meta.db_table
    changes = SegmentChange._meta.db_table
    values = {**scores.columns, "member_id": scores.data.member_ids}
    columns = [np.asarray(values[name]).astype(RAW_TYPES[kind]).tolist() for name, kind in RAW_COLUMNS]
    scored_by = str(scores.columns["scored_by"][0]) if len(scores.data.member_ids) else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS loyalty_health_raw ("
            + ", ".join(f"{name} {kind}" for name, kind in RAW_COLUMNS)
            + ") ON COMMIT DELETE ROWS"
        )
        cursor.execute("TRUNCATE loyalty_health_raw")
        with cursor.cursor.copy("COPY loyalty_health_raw FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([kind for _, kind in RAW_COLUMNS])
            for row in zip(*columns, strict=True):
                copy.write_row(row)
        cursor.execute(
            f"""
            INSERT INTO {changes} (program_id, member_id, from_segment, to_segment, changed_at)
            SELECT %s, s.member_id, COALESCE(h.segment, ''), s.segment, %s
              FROM loyalty_health_raw s LEFT JOIN {table} h ON h.member_id = s.member_id
             WHERE h.segment IS DISTINCT FROM s.segment
            RETURNING member_id, to_segment
            """,
            [program.pk, now],
        )
        moved_to_risk = [member_id for member_id, segment in cursor.fetchall() if segment == Segment.AT_RISK]
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in ["program_id", *FIELDS] if name != "segment_since")
        cursor.execute(
            f"""
            INSERT INTO {table} (member_id, program_id, {", ".join(FIELDS)})
            SELECT member_id, %s, orders, frequency,
                   to_timestamp(NULLIF(first_day, 'NaN') * 86400), to_timestamp(NULLIF(last_day, 'NaN') * 86400),
                   CAST(NULLIF(recency_days, 'NaN') AS INTEGER), CAST(NULLIF(age_days, 'NaN') AS INTEGER),
                   round(CAST(NULLIF(typical_gap_days, 'NaN') AS NUMERIC), 2),
                   round(CAST(total_spent AS NUMERIC), 2), round(CAST(monetary AS NUMERIC), 2),
                   NULLIF(r_score, 0), NULLIF(f_score, 0), NULLIF(m_score, 0),
                   round(CAST(NULLIF(p_alive, 'NaN') AS NUMERIC), 6), round(CAST(NULLIF(p_lapse, 'NaN') AS NUMERIC), 6),
                   round(CAST(NULLIF(expected_purchases, 'NaN') AS NUMERIC), 6),
                   CAST(to_timestamp(NULLIF(next_order_day, 'NaN') * 86400) AT TIME ZONE 'UTC' AS DATE),
                   round(CAST(NULLIF(predicted_clv, 'NaN') AS NUMERIC), 2),
                   segment, %s, at_risk, risk_reason, %s, %s,
                   to_timestamp(NULLIF(detractor_day, 'NaN') * 86400)
              FROM loyalty_health_raw
            ON CONFLICT (member_id) DO UPDATE SET {updates},
                segment_since = CASE WHEN {table}.segment = EXCLUDED.segment
                                     THEN {table}.segment_since ELSE EXCLUDED.segment_since END
            """,
            [program.pk, now, scored_by, now],
        )
    return moved_to_risk
