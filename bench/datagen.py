"""Data generation by COPY (never through the API): devices and millions of visit tokens.

Rows are written in PostgreSQL's binary COPY format, built in bounded chunks, so neither
this process nor the server ever holds more than one chunk. Background tokens are random
16-byte values: an HMAC output is indistinguishable from random, so they behave in every
index exactly like real tokens, and they can never match an exposure by chance (2^-128).
The tokens that must match are planted separately, computed by the reference phone client.

The bulk background (tens of millions of rows a date) is generated inside PostgreSQL
instead (``background_ensure``, below). The raw-COPY limit of B1 uses fully random tokens,
like real uploads, sent from Python by COPY as an upload's rows would be.
"""

import datetime as dt
import hashlib
import os
import struct
import uuid
from collections.abc import Iterable, Iterator

from django.db import connection

PG_EPOCH = dt.date(2000, 1, 1)
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
CHUNK_ROWS = 200_000
_FIELD16 = struct.pack(">i", 16)
_TOKEN_FIELDS = struct.pack(">h", 3)


def _date_field(date: dt.date) -> bytes:
    return struct.pack(">ii", 4, (date - PG_EPOCH).days)


def visit_token_rows(date: dt.date, tokens: Iterable[bytes], device_ids: Iterable[bytes]) -> bytes:
    """Binary COPY tuples ``(date, token, device_id)``; device ids as 16 raw bytes."""
    head = _TOKEN_FIELDS + _date_field(date) + _FIELD16
    return b"".join(head + token + _FIELD16 + device for token, device in zip(tokens, device_ids, strict=True))


def copy_visit_tokens(chunks: Iterable[bytes]) -> int:
    """COPY binary tuple chunks into the visit-token table (partitioned by date on PostgreSQL)."""
    from notifications.models import VisitToken

    table = VisitToken._meta.db_table
    written = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
        with raw.copy(f'COPY "{table}" (date, token, device_id) FROM STDIN (FORMAT BINARY)') as copy:
            copy.write(COPY_HEADER)
            for chunk in chunks:
                copy.write(chunk)
                written += len(chunk)
            copy.write(COPY_TRAILER)
    return written


def random_tokens(count: int) -> list[bytes]:
    pool = os.urandom(16 * count)
    return [pool[i : i + 16] for i in range(0, 16 * count, 16)]


def device_pool(count: int, *, seed: str) -> list[bytes]:
    """``count`` deterministic device ids (raw 16 bytes) of a named pool."""
    return [hashlib.sha256(f"{seed}:{i}".encode()).digest()[:16] for i in range(count)]


def devices_copy(device_ids: list[bytes]) -> None:
    """Create Device rows for raw ids (secrets unknown: these phones never call the API)."""
    from django.db import transaction

    from notifications.models import Device

    table = Device._meta.db_table
    today = dt.date.today()
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor
        raw.execute(f'CREATE TEMP TABLE bench_new_devices (LIKE "{table}" INCLUDING DEFAULTS) ON COMMIT DROP')
        with raw.copy("COPY bench_new_devices (id, secret_hash, created_at, last_seen_on) FROM STDIN") as copy:
            for device in device_ids:
                copy.write_row((uuid.UUID(bytes=device), hashlib.sha256(b"bench" + device).digest(), "now", today))
        raw.execute(f'INSERT INTO "{table}" SELECT * FROM bench_new_devices ON CONFLICT DO NOTHING')


def random_chunks(date: dt.date, count: int, device_ids: list[bytes]) -> Iterator[bytes]:
    """``count`` fully random tokens of ``date`` (the order real uploads arrive in)."""
    pool = len(device_ids)
    for start in range(0, count, CHUNK_ROWS):
        size = min(CHUNK_ROWS, count - start)
        devices = [device_ids[(start + i) % pool] for i in range(size)]
        yield visit_token_rows(date, random_tokens(size), devices)


# --- the stored background, kept across runs so a larger scale only adds what is missing ---
#
# Generated inside PostgreSQL, not sent by COPY: a 10M- and an 80M-token day are 90M rows, which
# Python would take an hour to build and stream. Row i of a date has the token
# sha256(date salt || i)[:16] (as random as an HMAC output, and reproducible) and one of
# NOISE_DEVICES devices. A date with no partition yet gets a plain table filled first, its hash
# indexes built after the rows (much faster than growing them row by row), and is then
# ATTACHed the way notifications/partitions.py attaches partitions (a CHECK constraint equal to
# the range first, so ATTACH need not scan it; the project's partitioned indexes adopt the ones
# built here). A date whose background differs from the size asked is dropped and generated
# again, so a partition is always exactly the size its figures are labelled with.

LAYOUT_TABLE = "bench_layout"
NOISE_DEVICES = 100_000
NOISE_DEVICE_ID_SQL = "md5('bench-noise:' || ({n}))::uuid"
# Row i's token: the first 16 bytes of sha256(date salt || i).
BACKGROUND_VALUE_SQL = "substring(sha256(convert_to(%(salt)s, 'UTF8') || int8send(i)) FROM 1 FOR 16)"


def _layout_ready(cursor) -> None:
    # The benchmark's own bookkeeping, in its own database: how many background tokens each
    # date holds, so a run at the same size generates nothing.
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {LAYOUT_TABLE} (date date PRIMARY KEY, background bigint NOT NULL)")


def layout_counts() -> dict[dt.date, int]:
    with connection.cursor() as cursor:
        _layout_ready(cursor)
        cursor.execute(f"SELECT date, background FROM {LAYOUT_TABLE}")
        return dict(cursor.fetchall())


def noise_devices_ensure() -> None:
    """The Device rows the background tokens belong to (created once, inside PostgreSQL)."""
    from notifications.models import Device

    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{Device._meta.db_table}" (id, secret_hash, created_at, last_seen_on) '
            f"SELECT {NOISE_DEVICE_ID_SQL.format(n='n')}, sha256(convert_to('bench-noise-secret:' || n, 'UTF8')), "
            "now(), current_date FROM generate_series(0, %s) n ON CONFLICT DO NOTHING",
            [NOISE_DEVICES - 1],
        )


def _background_select(date: dt.date, count: int) -> tuple[str, dict]:
    sql = (
        f"SELECT %(date)s::date, {BACKGROUND_VALUE_SQL}, {NOISE_DEVICE_ID_SQL.format(n='i %% ' + str(NOISE_DEVICES))} "
        "FROM generate_series(%(first)s::bigint, %(last)s::bigint) i"
    )
    return sql, {"date": date, "salt": f"bench-background:{date}:", "first": 0, "last": count - 1}


def _partition_exists(cursor, name: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_class WHERE relname = %s AND relkind = 'r'", [name])
    return cursor.fetchone() is not None


def _generate_new_partition(cursor, date: dt.date, count: int) -> None:
    from psycopg import sql as psql

    from notifications.partitions import PARENT, partition_name

    names = {
        "child": psql.Identifier(partition_name(date)),
        "parent": psql.Identifier(PARENT),
        "check": psql.Identifier(f"{partition_name(date)}_range"),
        "token_index": psql.Identifier(f"{partition_name(date)}_token_idx"),
        "device_index": psql.Identifier(f"{partition_name(date)}_device_id_idx"),
        "start": psql.Literal(date),
        "end": psql.Literal(date + dt.timedelta(days=1)),
    }

    def run(statement: str) -> None:
        cursor.execute(psql.SQL(statement).format(**names).as_string(connection.connection))

    run("CREATE TABLE {child} (LIKE {parent} INCLUDING DEFAULTS)")
    run("ALTER TABLE {child} ADD CONSTRAINT {check} CHECK (date >= {start} AND date < {end})")
    select, params = _background_select(date, count)
    table = psql.Identifier(partition_name(date)).as_string(connection.connection)
    cursor.execute(f"INSERT INTO {table} (date, token, device_id) {select}", params)
    cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
    run("CREATE INDEX {token_index} ON {child} USING hash (token)")
    run("CREATE INDEX {device_index} ON {child} USING hash (device_id)")
    run("ALTER TABLE {parent} ATTACH PARTITION {child} FOR VALUES FROM ({start}) TO ({end})")
    run("ALTER TABLE {child} DROP CONSTRAINT {check}")


def background_ensure(targets: dict[dt.date, int]) -> tuple[int, float]:
    """Give each date exactly its target of background tokens; returns (rows generated, seconds).

    A date already at its target is kept (with whatever earlier runs planted or uploaded
    there); any other date's partition is dropped and generated afresh, each in its own
    transaction, then vacuumed and analysed, so the planner has statistics and the pages'
    hint bits are set, as autovacuum keeps them on a production table.
    """
    import time

    from django.db import transaction

    from notifications.partitions import partition_name, visit_token_partition_drop

    have = layout_counts()
    missing = {date: count for date, count in targets.items() if have.get(date) != count}
    if not missing:
        return 0, 0.0
    noise_devices_ensure()
    started = time.perf_counter()
    for date, count in sorted(missing.items()):
        with connection.cursor() as cursor:
            exists = _partition_exists(cursor, partition_name(date))
        if exists:
            visit_token_partition_drop(partition_name(date))
        with transaction.atomic(), connection.cursor() as cursor:
            _generate_new_partition(cursor, date, count)
            cursor.execute(
                f"INSERT INTO {LAYOUT_TABLE} VALUES (%s, %s) ON CONFLICT (date) DO UPDATE SET background = %s",
                [date, count, count],
            )
    generated_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        for date in sorted(missing):
            cursor.execute(f'VACUUM (ANALYZE) "{partition_name(date)}"')
    return sum(missing.values()), generated_seconds


def vacuum_analyze() -> None:
    from notifications.models import VisitToken

    with connection.cursor() as cursor:
        cursor.execute(f'VACUUM (ANALYZE) "{VisitToken._meta.db_table}"')


def layout_forget(date: dt.date) -> None:
    with connection.cursor() as cursor:
        _layout_ready(cursor)
        cursor.execute(f"DELETE FROM {LAYOUT_TABLE} WHERE date = %s", [date])
