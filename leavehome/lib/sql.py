"""Running SQL composed with psycopg.sql through Django's connection, on PostgreSQL or SQLite.

The set-based statements (matching, ingest, retention, partitions, the feed) are composed
with ``psycopg.sql`` so identifiers are quoted, never formatted in. On PostgreSQL the text
is rendered against the live connection; the embedded SQLite default renders it without one
(its quoting of identifiers is the same), and the few statements whose SQL differs say so
with ``on_postgres()``. Statements run through Django's cursor, so they join the caller's
transaction.

``sql_run_prepared`` is for the few statements every request runs: Django's cursors bind
parameters on the client (the values are quoted into the text, so the server parses and
plans every call afresh), which for an upload's arrays of tokens cost more CPU than the
statement's work. It binds them on the server and prepares the statement once per
connection.
"""

import time
from collections.abc import Mapping, Sequence

import psycopg
from django.db import connection
from psycopg import sql


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def sql_text(query: sql.Composable) -> str:
    return query.as_string(connection.connection if on_postgres() else None)


def sql_text_static(query: sql.Composable) -> str:
    """A statement's text rendered without a connection, once, for a module constant.

    Identifiers are quoted the same way with or without a connection; literals (which would
    need the connection's encoding) have no place in such a statement: its values are
    parameters.
    """
    return query.as_string(None)


def sql_run(query: sql.Composable, params: Sequence = ()) -> list[tuple]:
    """Execute a composed statement; returns its rows (none for a statement without any)."""
    with connection.cursor() as cursor:
        cursor.execute(sql_text(query), params)
        return cursor.fetchall() if cursor.description else []


def sql_run_prepared(query: sql.Composable | str, params: Sequence | Mapping) -> list[tuple]:
    """Execute a composed statement as a server-side prepared statement (PostgreSQL only); returns its rows.

    The same connection as Django's cursors, so it joins the caller's transaction; database
    errors come out as Django's (``OperationalError`` and so on), and the statement is logged
    where Django logs queries (``connection.queries``, ``CaptureQueriesContext``). The text
    should be built once (a module constant, rendered with ``sql_text_static``): psycopg
    prepares per distinct text, and keeps the last 100 per connection. PgBouncer in
    transaction mode needs ``max_prepared_statements`` (1.21 and later) for this; in session
    mode it just works.
    """
    text = query if isinstance(query, str) else sql_text(query)
    # What Django's cursor() does before a statement: same thread, a live connection.
    connection.validate_thread_sharing()
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    started = time.monotonic()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(text, params, prepare=True)
        rows = cursor.fetchall() if cursor.description else []
    if connection.queries_logged:
        connection.queries_log.append({"sql": text, "time": f"{time.monotonic() - started:.3f}"})
    return rows


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
