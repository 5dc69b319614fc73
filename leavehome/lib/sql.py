"""Running SQL composed with psycopg.sql through Django's connection, on PostgreSQL or SQLite.

The set-based statements (matching, ingest, retention, partitions, the feed) are composed
with ``psycopg.sql`` so identifiers are quoted, never formatted in. On PostgreSQL the text
is rendered against the live connection; the embedded SQLite default renders it without one
(its quoting of identifiers is the same), and the few statements whose SQL differs say so
with ``on_postgres()``. Statements run through Django's cursor, so they join the caller's
transaction.
"""

from collections.abc import Sequence

from django.db import connection
from psycopg import sql


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def sql_text(query: sql.Composable) -> str:
    return query.as_string(connection.connection if on_postgres() else None)


def sql_run(query: sql.Composable, params: Sequence = ()) -> list[tuple]:
    """Execute a composed statement; returns its rows (none for a statement without any)."""
    with connection.cursor() as cursor:
        cursor.execute(sql_text(query), params)
        return cursor.fetchall() if cursor.description else []


def sql_rowcount(query: sql.Composable, params: Sequence = ()) -> int:
    """Execute a composed statement that returns no rows; returns how many it changed."""
    with connection.cursor() as cursor:
        cursor.execute(sql_text(query), params)
        return cursor.rowcount


def placeholders(count: int) -> sql.Composable:
    return sql.SQL(", ").join([sql.Placeholder()] * count)


def in_list(values: Sequence) -> tuple[sql.Composable, list]:
    """``IN (…)`` for a list of values: one array parameter on PostgreSQL, placeholders on SQLite."""
    if on_postgres():
        return sql.SQL("= ANY(%s)"), [list(values)]
    return sql.SQL("IN ({})").format(placeholders(len(values))), list(values)
