"""Ingesting a phone's visit tokens (PROTOCOL §4 ``POST /api/v1/visits``).

The request has been validated whole before this is called (notifications/api/serializers.py):
every token is 16 bytes, every date within retention. Here the tokens are written with one
bulk statement and handed to matching, all in one transaction, so an upload is stored
entirely or not at all, and matching runs only after it is visible.
"""

import datetime as dt
from collections.abc import Iterable, Mapping

from django.db import connection, transaction
from psycopg import sql

from notifications.matching import visit_tokens_match_later
from notifications.models import Device, VisitToken
from notifications.partitions import visit_token_partitions_ensure

# One PostgreSQL statement carries the whole upload as three arrays: a single round trip
# whatever the number of tokens (bounded by max_tokens_per_upload). The partitioned table
# has no unique key (notifications/partitions.py: hash indexes ingest faster), so ON
# CONFLICT cannot drop a re-uploaded token there; the NOT EXISTS does, by reading this
# device's rows of these dates through the per-partition hash index on device_id (a phone
# holds a few hundred). Only two concurrent uploads of the same token by the same device can
# still both insert it, which matching ignores (it groups by device and case visit). ON
# CONFLICT DO NOTHING stays for a table that has a unique key (SQLite's primary key).
# Plan (EXPLAIN on PostgreSQL 16): `v.date = ANY(%s)` prunes to the upload's partitions, and
# the anti-join probes each with a BitmapAnd of the hash indexes on device_id and token.
_INSERT_UNNEST = sql.SQL(
    """
    INSERT INTO {table} ({date}, {token}, {device})
    SELECT u.d, u.t, u.x FROM unnest(%s::date[], %s::bytea[], %s::uuid[]) AS u(d, t, x)
    WHERE NOT EXISTS (
        SELECT 1 FROM {table} AS v
        WHERE v.{device} = u.x AND v.{date} = u.d AND v.{token} = u.t AND v.{date} = ANY(%s::date[])
    )
    ORDER BY u.d, u.t
    ON CONFLICT DO NOTHING
    """
)


class DeviceDeleted(Exception):
    """The device was deleted while its upload was on the way; nothing was stored."""


# KEY SHARE: the weakest row lock that still conflicts with DELETE (and FOR UPDATE), so
# deletion and ingest of one device are ordered, while uploads and last-seen updates of the
# same device do not wait for each other.
_DEVICE_KEY_SHARE = sql.SQL("SELECT 1 FROM {device} WHERE {id} = %s FOR KEY SHARE")


def _device_hold(device: Device) -> None:
    """Lock the device row against deletion until this transaction ends; DeviceDeleted if gone."""
    if connection.vendor == "postgresql":
        query = _DEVICE_KEY_SHARE.format(
            device=sql.Identifier(Device._meta.db_table), id=sql.Identifier(Device._meta.pk.column)
        )
        with connection.cursor() as cursor:
            cursor.execute(query.as_string(connection.connection), [device.pk])
            found = cursor.fetchone() is not None
    else:
        # SQLite (the embedded default) has no row locks; the check narrows the window.
        found = Device.objects.filter(pk=device.pk).exists()
    if not found:
        raise DeviceDeleted(device.pk)


def _distinct_pairs(days: Mapping[dt.date, Iterable[bytes]]) -> list[tuple[dt.date, bytes]]:
    return sorted({(date, bytes(token)) for date, tokens in days.items() for token in tokens})


def visit_tokens_ingest(*, device: Device, days: Mapping[dt.date, Iterable[bytes]]) -> int:
    """Store a device's visit tokens and schedule their matching; returns how many were accepted.

    Raises DeviceDeleted if the device no longer exists (deleted by a concurrent request).

    ``days`` maps a local date to its 16-byte tokens. The count is of distinct
    ``(date, token)`` pairs in the request, stored now or already stored by an earlier
    upload, so the answer is the same however often the phone retries.
    """
    pairs = _distinct_pairs(days)
    if not pairs:
        return 0
    with transaction.atomic():
        _device_hold(device)
        visit_token_partitions_ensure(days.keys())
        if connection.vendor == "postgresql":
            meta = VisitToken._meta
            query = _INSERT_UNNEST.format(
                table=sql.Identifier(meta.db_table),
                date=sql.Identifier(meta.get_field("date").column),
                token=sql.Identifier(meta.get_field("token").column),
                device=sql.Identifier(meta.get_field("device").column),
            )
            dates = [date for date, _ in pairs]
            tokens = [token for _, token in pairs]
            params = [dates, tokens, [device.pk] * len(pairs), sorted(days)]
            with connection.cursor() as cursor:
                cursor.execute(query.as_string(connection.connection), params)
        else:
            # The embedded SQLite default: Django batches this into as few INSERTs as
            # SQLite's parameter limit allows; it is not the production path.
            VisitToken.objects.bulk_create(
                [VisitToken(date=date, token=token, device_id=device.pk) for date, token in pairs],
                ignore_conflicts=True,
            )
        visit_tokens_match_later(device_id=device.pk, dates=sorted(days))
    return len(pairs)
