"""Daily partitions of the visit-token table (PostgreSQL only; SQLite keeps one plain table).

``notifications_visittoken`` is ``PARTITION BY RANGE (date)`` with one partition per local
date, ``notifications_visittoken_pYYYYMMDD``, and a DEFAULT partition as a safety net (see
migration 0005). Partitions are created ahead by a beat task (``PARTITIONS_AHEAD`` days),
and on demand by ingest when an upload names a date that has none; the retention purge
drops whole partitions, which costs nothing next to deleting two billion rows.

A partition is created as a plain table and then ATTACHed: ATTACH takes only a SHARE UPDATE
EXCLUSIVE lock on the parent, so inserts and the matching joins go on meanwhile (CREATE
TABLE … PARTITION OF would take ACCESS EXCLUSIVE). The new table gets a CHECK constraint
equal to its range first, so ATTACH need not scan it; rows of that date that fell into the
DEFAULT partition are moved in before the ATTACH (which otherwise refuses). Creation is
serialised by a transaction-level advisory lock, so two uploads of a new date do not race.
"""

import datetime as dt

from django.db import connection, transaction
from psycopg import sql

from leavehome.lib.sql import on_postgres, sql_text
from notifications.models import VisitToken

PARENT = "notifications_visittoken"
DEFAULT_PARTITION = f"{PARENT}_default"
# Uploads may name dates up to today + 1 (PROTOCOL §4); one more day covers the time zone
# edge and a beat run that is late.
PARTITIONS_AHEAD = 3
# How long dropping a partition may wait for its lock before giving up (and retrying later).
DROP_LOCK_TIMEOUT = "5s"
# A partition is analysed again once this share of its rows (at least ANALYZE_MIN_ROWS) was
# written since its last ANALYZE: autovacuum's default rule, kept by beat whatever the
# server's autovacuum does.
ANALYZE_SCALE = 0.1
ANALYZE_MIN_ROWS = 1000
# Any constant distinct from other advisory locks of the project.
_ADVISORY_LOCK_KEY = 0x4C48_5054  # "LHPT"

# Dates known to have a partition in this process, so ingest asks the catalogue once a day.
_known_dates: set[dt.date] = set()


def partitioned() -> bool:
    return on_postgres()


def partition_name(date: dt.date) -> str:
    return f"{PARENT}_p{date:%Y%m%d}"


def visit_token_partitions_ensure(dates) -> list[dt.date]:
    """Make sure each of ``dates`` has its own partition; returns the dates created.

    Cheap when they exist (a process-level cache, then one catalogue query). Runs in the
    caller's transaction if there is one (ingest calls it inside the upload's transaction),
    else in its own.
    """
    if not partitioned():
        return []
    missing = sorted(set(dates) - _known_dates)
    if not missing:
        return []
    created = []
    with transaction.atomic(), connection.cursor() as cursor:
        existing = _existing_dates(cursor, missing)
        for date in missing:
            if date not in existing:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_KEY])
                if not _existing_dates(cursor, [date]):
                    _create(cursor, date)
                    created.append(date)
    # Cache only after the creating transaction commits: a rolled-back upload takes its
    # partition with it.
    transaction.on_commit(lambda: _known_dates.update(missing))
    return created


def visit_token_partition_dates(today: dt.date) -> list[dt.date]:
    """Every date an upload may name on ``today``: the retention window and PARTITIONS_AHEAD days ahead."""
    from django.conf import settings

    first = -settings.LEAVEHOME_RETENTION_DAYS
    return [today + dt.timedelta(days=offset) for offset in range(first, PARTITIONS_AHEAD + 1)]


def visit_token_partitions_ahead(today: dt.date | None = None) -> list[dt.date]:
    """Create the partitions of every date an upload may name (the beat task); returns those created."""
    from django.utils import timezone

    return visit_token_partitions_ensure(visit_token_partition_dates(today or timezone.localdate()))


def visit_token_partitions_analyze() -> list[str]:
    """ANALYZE the daily partitions that grew since their statistics were taken (the beat task); returns their names.

    Today's partition grows from empty to tens of millions of rows in a day. The upload sweep
    joins it with the exposures by index probes only while the planner knows how large it is:
    with the statistics of an almost empty table it chose to scan the partitions whole, which
    at 7M rows each took 20 s a batch and let the sweep fall behind (the soak, on a server with
    autovacuum off). Autovacuum's auto-analyze does this on most servers, but it can be off,
    or late behind a long vacuum; this keeps the rule itself. ANALYZE reads a fixed sample
    (~30,000 rows), a fraction of a second at any size, and takes no lock that blocks writes.
    """
    if not partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT s.relname FROM pg_stat_user_tables AS s
            JOIN pg_inherits AS i ON i.inhrelid = s.relid
            JOIN pg_class AS parent ON parent.oid = i.inhparent
            WHERE parent.relname = %s
              AND s.n_mod_since_analyze > greatest(%s, %s * greatest(s.n_live_tup, 0))
            ORDER BY s.relname
            """,
            [PARENT, ANALYZE_MIN_ROWS, ANALYZE_SCALE],
        )
        names = [row[0] for row in cursor.fetchall()]
        for name in names:
            cursor.execute(sql_text(sql.SQL("ANALYZE {}").format(sql.Identifier(name))))
    return names


def visit_token_partitions_before(cutoff: dt.date) -> list[tuple[str, dt.date]]:
    """The daily partitions whose whole range lies before ``cutoff``: (table name, date)."""
    if not partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT child.relname FROM pg_inherits
            JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
            JOIN pg_class child ON child.oid = pg_inherits.inhrelid
            WHERE parent.relname = %s AND child.relname LIKE %s
            """,
            [PARENT, f"{PARENT}_p%"],
        )
        names = [row[0] for row in cursor.fetchall()]
    dated = [(name, dt.datetime.strptime(name.rsplit("_p", 1)[1], "%Y%m%d").date()) for name in names]
    return sorted((name, date) for name, date in dated if date < cutoff)


def visit_token_partition_drop(name: str) -> None:
    """Detach and drop one daily partition (retention); the catalogue change is instant.

    DETACH takes an ACCESS EXCLUSIVE lock on the parent (CONCURRENTLY is refused while a
    DEFAULT partition exists). The lock is held for a moment only, but while it waits for
    running statements every new upload would queue behind it, so it gives up after
    ``DROP_LOCK_TIMEOUT`` and the purge task retries later (OperationalError is retried).
    """
    _known_dates.clear()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [DROP_LOCK_TIMEOUT])  # SET LOCAL
        detach = sql.SQL("ALTER TABLE {parent} DETACH PARTITION {child}")
        cursor.execute(sql_text(detach.format(parent=sql.Identifier(PARENT), child=sql.Identifier(name))))
        cursor.execute(sql_text(sql.SQL("DROP TABLE {child}").format(child=sql.Identifier(name))))


def _existing_dates(cursor, dates) -> set[dt.date]:
    cursor.execute(
        "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'",
        [[partition_name(date) for date in dates]],
    )
    names = {row[0] for row in cursor.fetchall()}
    return {date for date in dates if partition_name(date) in names}


def _create(cursor, date: dt.date) -> None:
    """Create, fill from DEFAULT, and attach the partition of ``date`` (see the module comment)."""
    names = {
        "child": sql.Identifier(partition_name(date)),
        "parent": sql.Identifier(PARENT),
        "default": sql.Identifier(DEFAULT_PARTITION),
        "check": sql.Identifier(f"{partition_name(date)}_range"),
        # DDL takes no bind parameters: the bounds go in as literals adapted by psycopg.
        "start": sql.Literal(date),
        "end": sql.Literal(date + dt.timedelta(days=1)),
    }
    statements = [
        "CREATE TABLE {child} (LIKE {parent} INCLUDING DEFAULTS)",
        "ALTER TABLE {child} ADD CONSTRAINT {check} CHECK (date >= {start} AND date < {end})",
        "WITH moved AS (DELETE FROM {default} WHERE date >= {start} AND date < {end} RETURNING *) "
        "INSERT INTO {child} SELECT * FROM moved",
        "ALTER TABLE {parent} ATTACH PARTITION {child} FOR VALUES FROM ({start}) TO ({end})",
        # Redundant once attached (the partition bound says the same).
        "ALTER TABLE {child} DROP CONSTRAINT {check}",
    ]
    for statement in statements:
        cursor.execute(sql_text(sql.SQL(statement).format(**names)))


def visit_tokens_stored_estimate() -> int:
    """Visit tokens stored: the planner's estimate over the date partitions on PostgreSQL (an
    exact count(*) of billions of rows takes minutes), the exact count on SQLite."""
    if connection.vendor != "postgresql":
        return VisitToken.objects.count()
    # reltuples is -1 for a partition never analysed; count it as empty.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_inherits i "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE p.relname = %s",
            [VisitToken._meta.db_table],
        )
        return cursor.fetchone()[0]
