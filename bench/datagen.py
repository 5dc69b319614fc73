"""Data generation by COPY (never through the API): devices and millions of visit tokens.

Rows are written in PostgreSQL's binary COPY format, built in bounded chunks, so neither
this process nor the server ever holds more than one chunk. Background tokens are random
16-byte values: an HMAC output is indistinguishable from random, so they behave in every
index exactly like real tokens, and they can never match an exposure by chance (2^-128).
The tokens that must match are planted separately, computed by the reference phone client.

For the bulk background load the tokens of each date are generated in ascending order (a
random 12-byte tail under an evenly spaced 4-byte head): a B-tree then grows at its right
edge, as it would after ``CREATE INDEX``, instead of splitting random leaves, which makes a
100M-row load take minutes rather than an hour on this machine. The value distribution is
still uniform. The raw-COPY limit of B1 uses fully random tokens, like real uploads.
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


def ascending_tokens(start: int, count: int, total: int) -> list[bytes]:
    """Tokens ``start … start+count`` of ``total`` in ascending order, each with a random tail."""
    tails = os.urandom(12 * count)
    step = (1 << 32) / total
    pack = struct.Struct(">I").pack
    return [pack(int((start + i) * step)) + tails[12 * i : 12 * i + 12] for i in range(count)]


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


def background_chunks(date: dt.date, count: int, device_ids: list[bytes]) -> Iterator[bytes]:
    """``count`` random-looking tokens of ``date`` in ascending order, in COPY chunks."""
    pool = len(device_ids)
    for start in range(0, count, CHUNK_ROWS):
        size = min(CHUNK_ROWS, count - start)
        tokens = ascending_tokens(start, size, count)
        devices = [device_ids[(start + i) * 7919 % pool] for i in range(size)]
        yield visit_token_rows(date, tokens, devices)


def random_chunks(date: dt.date, count: int, device_ids: list[bytes]) -> Iterator[bytes]:
    """``count`` fully random tokens of ``date`` (the order real uploads arrive in)."""
    pool = len(device_ids)
    for start in range(0, count, CHUNK_ROWS):
        size = min(CHUNK_ROWS, count - start)
        devices = [device_ids[(start + i) % pool] for i in range(size)]
        yield visit_token_rows(date, random_tokens(size), devices)


# --- the stored background, kept across runs so a larger scale only adds what is missing ---

LAYOUT_TABLE = "bench_layout"
NOISE_DEVICES = 100_000


def _layout_ready(cursor) -> None:
    # The benchmark's own bookkeeping, in its own database: how many background tokens each
    # date already holds, so growing from 10M to 30M loads only the difference.
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {LAYOUT_TABLE} (date date PRIMARY KEY, background bigint NOT NULL)")


def layout_counts() -> dict[dt.date, int]:
    with connection.cursor() as cursor:
        _layout_ready(cursor)
        cursor.execute(f"SELECT date, background FROM {LAYOUT_TABLE}")
        return dict(cursor.fetchall())


def noise_devices() -> list[bytes]:
    """The device ids the background tokens belong to (created once, by COPY)."""
    from notifications.models import Device

    ids = device_pool(NOISE_DEVICES, seed="bench-noise")
    if not Device.objects.filter(id=uuid.UUID(bytes=ids[-1])).exists():
        devices_copy(ids)
    return ids


def background_ensure(targets: dict[dt.date, int]) -> tuple[int, float]:
    """Bring each date's background tokens up to its target by COPY; returns (rows loaded, seconds).

    Each date is loaded in its own transaction, then the table is vacuumed and analysed so
    the planner has statistics and index-only scans see an up-to-date visibility map, as
    they would on a production table that autovacuum keeps.
    """
    import time

    from django.db import transaction

    from notifications.partitions import visit_token_partitions_ensure

    have = layout_counts()
    missing = {date: count - have.get(date, 0) for date, count in targets.items() if count > have.get(date, 0)}
    if not missing:
        return 0, 0.0
    devices = noise_devices()
    started = time.perf_counter()
    for date, count in sorted(missing.items()):
        with transaction.atomic():
            visit_token_partitions_ensure([date])
            copy_visit_tokens(background_chunks(date, count, devices))
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {LAYOUT_TABLE} VALUES (%s, %s) ON CONFLICT (date) DO UPDATE "
                    f"SET background = {LAYOUT_TABLE}.background + excluded.background",
                    [date, count],
                )
    loaded_seconds = time.perf_counter() - started
    vacuum_analyze()
    return sum(missing.values()), loaded_seconds


def vacuum_analyze() -> None:
    from notifications.models import VisitToken

    with connection.cursor() as cursor:
        cursor.execute(f'VACUUM (ANALYZE) "{VisitToken._meta.db_table}"')


def layout_forget(date: dt.date) -> None:
    with connection.cursor() as cursor:
        _layout_ready(cursor)
        cursor.execute(f"DELETE FROM {LAYOUT_TABLE} WHERE date = %s", [date])
