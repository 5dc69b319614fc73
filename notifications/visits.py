"""Ingesting a phone's visit tokens (PROTOCOL §4 ``POST /api/v1/visits``).

The request has been validated whole before this is called (notifications/api/uploads.py):
every token is 16 bytes, every date within retention. Here the tokens are written, with one
upload-backlog row per date for the matching sweep (notifications/matching.py), in one
statement on PostgreSQL (one transaction on SQLite), so an upload is stored entirely or not
at all, and is matched once it is visible. Nothing is queued: the upload never waits on, or
depends on, the broker.
"""

import datetime as dt
from collections.abc import Iterable, Mapping

from django.db import transaction
from django.utils import timezone
from psycopg import sql

from leavehome.errors import ServiceError
from leavehome.lib.sql import on_postgres, sql_run_prepared, sql_text_static
from notifications.devices import device_authenticate, device_secret_hash, device_seen
from notifications.models import Device, UploadBacklog, VisitToken
from notifications.partitions import visit_token_partitions_ensure

# One PostgreSQL statement carries the whole upload: a single round trip, and a
# single implicit transaction when the caller has none, whatever the number of tokens
# (bounded by max_tokens_per_upload). It is prepared once per connection and its parameters
# bound on the server (leavehome/lib/sql.py ``sql_run_prepared``): PostgreSQL plans it once,
# and the tokens travel as binary, not as quoted text.
#
# ``held`` finds the device, by id or (for the upload endpoint) by its secret's hash through
# the unique index: so the upload's authentication is this statement too. It locks the row
# FOR KEY SHARE: the weakest row lock that still conflicts with DELETE (and FOR UPDATE), so
# deletion and ingest of one device are ordered, while uploads and last-seen updates of the
# same device do not wait for each other. A device deleted (or never registered) yields no
# row, and then nothing is written (every other part reads ``held``); the caller learns it
# from the empty result. ``seen`` records that the device called today (at most one write
# per device and day, as ``device_seen`` does).
#
# The partitioned table has no unique key (notifications/partitions.py: hash indexes ingest
# faster), so ON CONFLICT cannot drop a re-uploaded token there; the EXCEPT does, by reading
# this device's rows of these dates through the per-partition hash index on device_id (a
# phone holds a few hundred) and keeping the uploaded pairs not among them. Driving it from
# the device, not from each token, keeps its cost independent of how many phones share a
# token (a busy venue's day token is shared by thousands). Only two concurrent uploads of the
# same token by the same device can still both insert it, which matching ignores (it groups
# by device and case visit). ``v.date = ANY(%(dates)s)`` prunes to the upload's partitions.
#
# The tokens travel as one byte string, 16 bytes each, ordered by date; ``dated`` holds the
# upload's dates in order with how many tokens each has (and where its tokens begin), which
# both cuts the string into (date, token) rows and writes the backlog rows. One bytea to
# bind instead of two arrays of forty values: binding arrays cost the web process more CPU
# than the statement costs PostgreSQL.
_INGEST = """
    WITH held AS MATERIALIZED (
        SELECT d.id FROM {device} AS d WHERE d.{key} = %(key)s FOR KEY SHARE
    ), seen AS (
        UPDATE {device} AS d SET {last_seen_on} = %(today)s FROM held
        WHERE d.id = held.id AND d.{last_seen_on} < %(today)s
    ), dated AS (
        SELECT u.d, u.n, (sum(u.n) OVER (ORDER BY u.i) - u.n)::integer AS first
        FROM unnest(%(dates)s::date[], %(counts)s::integer[]) WITH ORDINALITY AS u(d, n, i)
    ), uploaded AS (
        SELECT dated.d, substring(%(tokens)b::bytea FROM (dated.first + k) * 16 + 1 FOR 16) AS t
        FROM dated, generate_series(0, dated.n - 1) AS k
    ), stored AS (
        INSERT INTO {table} ({date}, {token}, {device_id})
        SELECT n.d, n.t, held.id FROM held, (
            SELECT u.d, u.t FROM uploaded AS u
            EXCEPT
            SELECT v.{date}, v.{token} FROM {table} AS v, held AS h
            WHERE v.{device_id} = h.id AND v.{date} = ANY(%(dates)s::date[])
        ) AS n
        ORDER BY n.d, n.t
    ), queued AS (
        INSERT INTO {backlog} (device_id, date, tokens)
        SELECT held.id, dated.d, dated.n FROM held, dated
    )
    SELECT id FROM held
"""


def _ingest_statement(key: str) -> str:
    meta = VisitToken._meta
    return sql_text_static(
        sql.SQL(_INGEST).format(
            device=sql.Identifier(Device._meta.db_table),
            key=sql.Identifier(Device._meta.get_field(key).column),
            last_seen_on=sql.Identifier(Device._meta.get_field("last_seen_on").column),
            table=sql.Identifier(meta.db_table),
            date=sql.Identifier(meta.get_field("date").column),
            token=sql.Identifier(meta.get_field("token").column),
            device_id=sql.Identifier(meta.get_field("device").column),
            backlog=sql.Identifier(UploadBacklog._meta.db_table),
        )
    )


_INGEST_BY_ID = _ingest_statement("id")
_INGEST_BY_SECRET = _ingest_statement("secret_hash")


class DeviceDeleted(ServiceError):
    """The device was deleted while its upload was on the way; nothing was stored."""

    code = "authentication_failed"
    status = 401

    def __init__(self, device_id=None):
        super().__init__("Unknown device secret.")
        self.device_id = device_id


def _distinct_pairs(days: Mapping[dt.date, Iterable[bytes]]) -> list[tuple[dt.date, bytes]]:
    return sorted({(date, bytes(token)) for date, tokens in days.items() for token in tokens})


def _tokens_per_date(pairs, dates) -> list[int]:
    counts = dict.fromkeys(dates, 0)
    for date, _token in pairs:
        counts[date] += 1
    return [counts[date] for date in dates]


def _ingest_postgres(statement: str, key, pairs, dates):
    params = {
        "key": key,
        "today": timezone.localdate(),
        "dates": dates,
        "counts": _tokens_per_date(pairs, dates),
        "tokens": b"".join(token for _, token in pairs),  # ordered by date, as ``dates``
    }
    rows = sql_run_prepared(statement, params)
    return rows[0][0] if rows else None


def _ingest_sqlite(device: Device | None, pairs, dates) -> bool:
    # The embedded default: SQLite has no row locks and one writer at a time, so the check
    # and the writes in one transaction are ordered against a deletion. Django batches the
    # rows into as few INSERTs as SQLite's parameter limit allows; not the production path.
    with transaction.atomic():
        if device is None or not Device.objects.filter(pk=device.pk).exists():
            return False
        device_seen(device)
        VisitToken.objects.bulk_create(
            [VisitToken(date=date, token=token, device_id=device.pk) for date, token in pairs],
            ignore_conflicts=True,
        )
        UploadBacklog.objects.bulk_create(
            UploadBacklog(device_id=device.pk, date=date, tokens=count)
            for date, count in zip(dates, _tokens_per_date(pairs, dates), strict=True)
        )
    return True


def _pairs_and_dates(days):
    pairs = _distinct_pairs(days)
    dates = sorted({date for date, _ in pairs})
    # In a transaction of its own when a partition must be made (rarely: beat makes them
    # ahead), so the upload's statement holds no DDL lock.
    visit_token_partitions_ensure(dates)
    return pairs, dates


def visit_upload_store(*, secret: str, days: Mapping[dt.date, Iterable[bytes]]) -> int | None:
    """Authenticate a device by its secret and store its upload, as one statement on PostgreSQL.

    Returns how many tokens were accepted (as ``visit_tokens_ingest``), or None when no
    device holds this secret (never registered, or deleted, even by a request racing this
    one): then nothing was stored. The device is recorded as seen today.
    """
    pairs, dates = _pairs_and_dates(days)
    if on_postgres():
        if not secret.isascii():
            return None
        stored = _ingest_postgres(_INGEST_BY_SECRET, device_secret_hash(secret), pairs, dates) is not None
    else:
        stored = _ingest_sqlite(device_authenticate(secret), pairs, dates)
    return len(pairs) if stored else None


def visit_tokens_ingest(*, device: Device, days: Mapping[dt.date, Iterable[bytes]]) -> int:
    """Store a device's visit tokens and put their dates in the matching backlog; returns how many were accepted.

    Raises DeviceDeleted if the device no longer exists (deleted by a concurrent request).

    ``days`` maps a local date to its 16-byte tokens. The count is of distinct
    ``(date, token)`` pairs in the request, stored now or already stored by an earlier
    upload, so the answer is the same however often the phone retries. The caller asks for
    the sweep (notifications/tasks.py, ``uploads_match_soon``); with a broker, beat runs it.
    """
    pairs, dates = _pairs_and_dates(days)
    if not pairs:
        return 0
    if on_postgres():
        stored = _ingest_postgres(_INGEST_BY_ID, device.pk, pairs, dates) is not None
    else:
        stored = _ingest_sqlite(device, pairs, dates)
    if not stored:
        raise DeviceDeleted(device.pk)
    return len(pairs)
