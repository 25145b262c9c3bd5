"""CSV exports, streamed: rows go from a database cursor to the client a chunk at a time.

Each export is a header plus a generator over ``values_list(...).iterator(chunk_size=...)``
(a server-side cursor on PostgreSQL), so a million rows never sit in memory as a list or as
model instances. The generator yields the header before it touches the database.

Cells that a spreadsheet would run as a formula (text starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) get a leading apostrophe (OWASP "CSV injection"): a
customer's name is data, never a formula.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header

from .models import Member, PointsEntry, Program, SurveyResponse

#: Rows fetched from the cursor at a time.
CHUNK_SIZE = 2000
#: CSV lines joined into one piece of the response (fewer, larger writes to the client).
LINES_PER_PIECE = 500

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

MEMBER_HEADER = [
    "id",
    "email",
    "name",
    "programme",
    "tier",
    "segment",
    "at risk",
    "balance",
    "lifetime points",
    "orders",
    "last purchase",
    "joined",
]
RESPONSE_HEADER = [
    "answered at",
    "member id",
    "member email",
    "programme",
    "survey",
    "order",
    "category",
    "NPS",
    "CSAT",
    "detractor",
    "comment",
    "language",
    "last changed at",
]
LEDGER_HEADER = ["date", "member id", "member email", "kind", "points", "reference", "description", "created by"]


class _Echo:
    """What ``csv.writer`` writes to: hands each formatted line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return f"'{value}"
    return value


def csv_lines(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The header, then the rows in pieces of ``LINES_PER_PIECE`` lines. Lazy: nothing of
    ``rows`` is read before the header has been taken."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    piece: list[str] = []
    for row in rows:
        piece.append(writer.writerow([_cell(value) for value in row]))
        if len(piece) >= LINES_PER_PIECE:
            yield "".join(piece)
            piece = []
    if piece:
        yield "".join(piece)


def csv_response(*, filename: str, header: list[str], rows: Iterable[Iterable[Any]]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "no-store"  # personal data: no copies in caches
    return response


def _user_fields(*names: str) -> list[str]:
    model = get_user_model()
    found = []
    for name in names:
        try:
            model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        found.append(name)
    return found


# --- members -----------------------------------------------------------------------------------


def member_rows(queryset: QuerySet[Member]) -> Iterator[tuple]:
    """One row per member of ``queryset`` (any filter, e.g. the admin's changelist), by id."""
    email = get_user_model().get_email_field_name()
    names = _user_fields("first_name", "last_name")
    rows = (
        queryset.order_by("pk")
        .values_list(
            "pk",
            f"user__{email}",
            *(f"user__{name}" for name in names),
            "program__name",
            "tier__name",
            "health__segment",
            "health__at_risk",
            "balance",
            "lifetime_points",
            "orders_count",
            "last_purchase_at",
            "joined_at",
        )
        .iterator(chunk_size=CHUNK_SIZE)
    )
    split = 2 + len(names)
    for row in rows:
        name = " ".join(part for part in row[2:split] if part)
        yield (row[0], row[1], name, *row[split:])


def members_filename(today: date | None = None) -> str:
    return f"members-{(today or timezone.localdate()).isoformat()}.csv"


def members_csv(queryset: QuerySet[Member]) -> StreamingHttpResponse:
    return csv_response(filename=members_filename(), header=MEMBER_HEADER, rows=member_rows(queryset))


# --- ledger --------------------------------------------------------------------------------------


def ledger_entries(*, start: date, end: date, program: Program | None = None) -> QuerySet[PointsEntry]:
    """Entries created from ``start`` to ``end`` (both whole local days)."""
    tz = timezone.get_current_timezone()
    since = timezone.make_aware(datetime.combine(start, time.min), tz)
    until = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), tz)
    entries = PointsEntry.objects.filter(created_at__gte=since, created_at__lt=until)
    return entries.filter(program=program) if program is not None else entries


def ledger_rows(queryset: QuerySet[PointsEntry]) -> Iterator[tuple]:
    model = get_user_model()
    return (
        queryset.order_by("created_at", "pk")
        .values_list(
            "created_at",
            "member_id",
            f"member__user__{model.get_email_field_name()}",
            "kind",
            "points",
            "reference",
            "description",
            f"created_by__{model.USERNAME_FIELD}",
        )
        .iterator(chunk_size=CHUNK_SIZE)
    )


def ledger_filename(start: date, end: date) -> str:
    return f"ledger-{start.isoformat()}-to-{end.isoformat()}.csv"


def ledger_csv(*, start: date, end: date, program: Program | None = None) -> StreamingHttpResponse:
    rows = ledger_rows(ledger_entries(start=start, end=end, program=program))
    return csv_response(filename=ledger_filename(start, end), header=LEDGER_HEADER, rows=rows)


# --- survey responses ----------------------------------------------------------------------------


def response_rows(queryset: QuerySet[SurveyResponse]) -> Iterator[tuple]:
    """One row per response of ``queryset`` (the admin's filter and search), oldest first."""
    email = get_user_model().get_email_field_name()
    return (
        queryset.order_by("submitted_at", "pk")
        .values_list(
            "submitted_at",
            "member_id",
            f"member__user__{email}",
            "program__name",
            "survey__name",
            "purchase__order_reference",
            "purchase__category",
            "nps",
            "csat",
            "is_detractor",
            "comment",
            "language",
            "updated_at",
        )
        .iterator(chunk_size=CHUNK_SIZE)
    )


def responses_filename(today: date | None = None) -> str:
    return f"survey-responses-{(today or timezone.localdate()).isoformat()}.csv"


def responses_csv(queryset: QuerySet[SurveyResponse]) -> StreamingHttpResponse:
    return csv_response(filename=responses_filename(), header=RESPONSE_HEADER, rows=response_rows(queryset))
