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

# One PostgreSQL statement carries the whole upload as three arrays: a single round trip and
# a single index pass, whatever the number of tokens (bounded by max_tokens_per_upload).
# ON CONFLICT DO NOTHING on the primary key (date, token, device_id) makes a re-upload, or a
# retried request, harmless. Ordering by (date, token) walks each date's partition and its
# btree in key order.
_INSERT_UNNEST = sql.SQL(
    """
    INSERT INTO {table} ({date}, {token}, {device})
    SELECT d, t, x FROM unnest(%s::date[], %s::bytea[], %s::uuid[]) AS u(d, t, x)
    ORDER BY d, t
    ON CONFLICT DO NOTHING
    """
)


def _distinct_pairs(days: Mapping[dt.date, Iterable[bytes]]) -> list[tuple[dt.date, bytes]]:
    return sorted({(date, bytes(token)) for date, tokens in days.items() for token in tokens})


def visit_tokens_ingest(*, device: Device, days: Mapping[dt.date, Iterable[bytes]]) -> int:
    """Store a device's visit tokens and schedule their matching; returns how many were accepted.

    ``days`` maps a local date to its 16-byte tokens. The count is of distinct
    ``(date, token)`` pairs in the request, stored now or already stored by an earlier
    upload, so the answer is the same however often the phone retries.
    """
    pairs = _distinct_pairs(days)
    if not pairs:
        return 0
    with transaction.atomic():
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
            with connection.cursor() as cursor:
                cursor.execute(query.as_string(connection.connection), [dates, tokens, [device.pk] * len(pairs)])
        else:
            # The embedded SQLite default: Django batches this into as few INSERTs as
            # SQLite's parameter limit allows; it is not the production path.
            VisitToken.objects.bulk_create(
                [VisitToken(date=date, token=token, device_id=device.pk) for date, token in pairs],
                ignore_conflicts=True,
            )
        visit_tokens_match_later(device_id=device.pk, dates=sorted(days))
    return len(pairs)
