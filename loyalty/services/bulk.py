"""Set different values on many rows in one ``UPDATE ... FROM (VALUES ...)`` statement.

Django's ``bulk_update`` builds a ``CASE WHEN`` per row and field: correct, but for a few
hundred rows the Python cost of building those expressions is far higher than the database's
(the outbox marks hundreds of emails per batch). PostgreSQL and SQLite (3.33+) both take
``UPDATE ... FROM``; other databases fall back to ``bulk_update``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import connection, models

CHUNK = 500


def bulk_set(
    model: type[models.Model],
    rows: Mapping[int, Mapping[str, Any]],
    fields: Iterable[str],
    *,
    increment: Iterable[str] = (),
) -> None:
    """For each ``pk: {field: value}`` set those fields; fields in ``increment`` are added to
    (``col = col + value``) instead of replaced. Every row must carry every field."""
    fields, increment = list(fields), set(increment)
    if not rows or not fields:
        return
    if connection.vendor not in ("postgresql", "sqlite"):
        _fallback(model, rows, fields, increment)
        return
    opts = model._meta
    table = connection.ops.quote_name(opts.db_table)
    pk = opts.pk
    columns = [opts.get_field(name) for name in fields]
    names = ["k", *[f"v{i}" for i in range(len(columns))]]
    assignments = []
    for i, field in enumerate(columns):
        column = connection.ops.quote_name(field.column)
        value = f"v.{_alias(names, i + 1)}"
        assignments.append(
            f"{column} = {table}.{column} + {value}" if field.name in increment else f"{column} = {value}"
        )
    where = f"WHERE {table}.{connection.ops.quote_name(pk.column)} = v.{_alias(names, 0)}"
    items = list(rows.items())
    if connection.vendor == "postgresql":
        # One array per column: a short statement whatever the number of rows.
        types = [pk.cast_db_type(connection), *(field.cast_db_type(connection) for field in columns)]
        arrays = ", ".join(f"%s::{kind}[]" for kind in types)
        sql = f"UPDATE {table} SET {', '.join(assignments)} FROM unnest({arrays}) AS v({', '.join(names)}) {where}"
        params = [[pk.get_db_prep_value(key, connection) for key, _values in items]]
        for field in columns:
            params.append([field.get_db_prep_save(values[field.name], connection) for _key, values in items])
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        params: list[Any] = []
        for key, values in chunk:
            params.append(pk.get_db_prep_value(key, connection))
            params.extend(field.get_db_prep_save(values[field.name], connection) for field in columns)
        row = f"({', '.join(['%s'] * (len(columns) + 1))})"
        sql = f"UPDATE {table} SET {', '.join(assignments)} FROM (VALUES {', '.join([row] * len(chunk))}) AS v {where}"
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _alias(names: list[str], index: int) -> str:
    # SQLite names the VALUES columns column1, column2...; PostgreSQL takes the alias list.
    return names[index] if connection.vendor == "postgresql" else f"column{index + 1}"


def _fallback(model, rows, fields, increment) -> None:
    objects = []
    for key, values in rows.items():
        obj = model(pk=key)
        for name in fields:
            value = values[name]
            setattr(obj, name, models.F(name) + value if name in increment else value)
        objects.append(obj)
    model.objects.bulk_update(objects, fields)
