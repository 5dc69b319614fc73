"""The public exposure feed: published exposure tokens for apps that match on the phone.

The feed is an append-only log (ExposureFeedItem). A publication appends its case visits'
exposure tokens as ``active``; a withdrawal appends the ones no other published case still
holds as ``withdrawn``. A phone keeps, per ``(date, token)``, the latest line it has read.

Pages. The log is served in pages of fixed id ranges: page ``k`` holds the items with
``k·PAGE_SIZE <= id < (k+1)·PAGE_SIZE``. Every phone asks for the same URLs, so a shared cache
(nginx, a CDN) answers almost all of them. A page is *closed* once an item with an id at or
past its end exists: no item can ever be added to it again (see below), so it is served as
immutable. The last, open page is served with a short max-age.

Why no phone ever misses an item. Ids come from a sequence, and sequences are allocated in
one order but committed in another: if transaction A takes id 7 and B takes id 8, B may
commit first; a phone reading then sees 8, moves its cursor past 7, and never sees 7 when A
commits. We prevent that at the source: ``exposure_feed_append`` first takes a
transaction-scoped advisory lock, held until its transaction commits or rolls back, so
appends are serialised through commit and every id a later transaction allocates is greater
than every id an earlier one committed. Whatever a reader sees is therefore a prefix of the
log (with holes only where a transaction rolled back, which never fill). The alternative, a
watermark below the oldest in-flight id, needs a scan of running transactions on every
read; publications are a few a day, so serialising them costs nothing. On SQLite writers
are serialised by the database lock already (and AUTOINCREMENT never reuses an id).
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Exists, Min, OuterRef
from psycopg import sql

from leavehome.lib.sql import on_postgres, sql_text
from notifications.models import Case, ExposureFeedItem, ExposureToken

# Items per page. Never change it on a running deployment: caches hold pages by number.
PAGE_SIZE = 1000
# pg_advisory_xact_lock key for feed appends ("LHFEED" in ASCII).
_APPEND_LOCK = 0x4C4846454544

# Publication: every distinct (date, token, risk) of the case visits, in key order.
_APPEND_ACTIVE = sql.SQL(
    """
    INSERT INTO {feed} (date, token, risk, status)
    SELECT DISTINCT e.date, e.token, e.risk, 'active'
    FROM {exposure} AS e
    WHERE e.case_visit_id = ANY(%s)
    ORDER BY e.date, e.token
    """
)
# Withdrawal: the same, minus the (date, token) pairs another published case visit still
# holds (a phone must keep those active). Index: one_exposure_token_per_case_visit
# (date, token, case_visit_id) for the NOT EXISTS probe.
_APPEND_WITHDRAWN = sql.SQL(
    """
    INSERT INTO {feed} (date, token, risk, status)
    SELECT DISTINCT e.date, e.token, e.risk, 'withdrawn'
    FROM {exposure} AS e
    WHERE e.case_visit_id = ANY(%s)
      AND NOT EXISTS (
        SELECT 1 FROM {exposure} AS o
        JOIN {case_visit} AS cv ON cv.id = o.case_visit_id
        JOIN {case} AS c ON c.id = cv.case_id
        WHERE o.date = e.date AND o.token = e.token AND c.status = 'published'
          AND o.case_visit_id <> ALL(%s)
      )
    ORDER BY e.date, e.token
    """
)


@dataclass(frozen=True)
class FeedPage:
    number: int
    items: list[ExposureFeedItem]
    closed: bool


def _sqlite_append(case_visit_ids: list[int], status: str) -> int:
    """The same selection with the ORM, for the embedded SQLite default (not the production path)."""
    rows = ExposureToken.objects.filter(case_visit_id__in=case_visit_ids)
    if status == ExposureFeedItem.Status.WITHDRAWN:
        still_held = ExposureToken.objects.filter(
            date=OuterRef("date"), token=OuterRef("token"), case_visit__case__status=Case.Status.PUBLISHED
        ).exclude(case_visit_id__in=case_visit_ids)
        rows = rows.exclude(Exists(still_held))
    values = rows.values_list("date", "token", "risk").distinct().order_by("date", "token")
    created = ExposureFeedItem.objects.bulk_create(
        ExposureFeedItem(date=date, token=bytes(token), risk=risk, status=status) for date, token, risk in values
    )
    return len(created)


def exposure_feed_append(*, case_visit_ids: Sequence[int], status: str) -> int:
    """Append the exposure tokens of ``case_visit_ids`` to the feed with ``status``; returns the count.

    Call it inside the publish or withdraw transaction, after the case visits' ExposureToken
    rows exist (and, on withdrawal, before any are deleted). A withdrawal leaves out the
    ``(date, token)`` pairs that a published case visit outside ``case_visit_ids`` still holds.
    It holds the feed's append lock until that transaction ends (module comment).
    """
    if status not in ExposureFeedItem.Status.values:
        raise ValueError(f"unknown feed status {status!r}")
    ids = sorted({int(pk) for pk in case_visit_ids})
    if not ids:
        return 0
    with transaction.atomic():
        if not on_postgres():
            return _sqlite_append(ids, status)
        query = _APPEND_ACTIVE if status == ExposureFeedItem.Status.ACTIVE else _APPEND_WITHDRAWN
        query = query.format(
            feed=sql.Identifier(ExposureFeedItem._meta.db_table),
            exposure=sql.Identifier(ExposureToken._meta.db_table),
            case_visit=sql.Identifier(ExposureToken._meta.get_field("case_visit").related_model._meta.db_table),
            case=sql.Identifier(Case._meta.db_table),
        )
        params = [ids] if status == ExposureFeedItem.Status.ACTIVE else [ids, ids]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_APPEND_LOCK])
            cursor.execute(sql_text(query), params)
            return cursor.rowcount


def exposure_feed_first_page() -> int:
    """The page a new phone starts from: the one holding the oldest retained item."""
    oldest = ExposureFeedItem.objects.aggregate(oldest=Min("id"))["oldest"]
    return 0 if oldest is None else oldest // PAGE_SIZE


def exposure_feed_page(number: int) -> FeedPage:
    """Page ``number`` of the feed, oldest first, and whether it is closed (immutable).

    Index: the primary key, a range scan of at most PAGE_SIZE rows.
    """
    start, end = number * PAGE_SIZE, (number + 1) * PAGE_SIZE
    # Closedness first, items second (two snapshots): once an id >= end - 1 is visible, every
    # smaller id has committed or never will, so the later read of the items sees them all.
    # The other order could read a partial page, then see a just-committed later id, and
    # call the partial page closed.
    closed = ExposureFeedItem.objects.filter(id__gte=end - 1).exists()
    items = list(ExposureFeedItem.objects.filter(id__gte=start, id__lt=end).order_by("id"))
    return FeedPage(number=number, items=items, closed=closed)


def exposure_feed_purge(*, before: dt.date, chunk: int = 10_000) -> int:
    """Delete feed items of dates before ``before`` in bounded chunks (retention); returns the count."""
    total = 0
    while True:
        ids = list(ExposureFeedItem.objects.filter(date__lt=before).order_by("id").values_list("id", flat=True)[:chunk])
        if not ids:
            return total
        with transaction.atomic():
            total += ExposureFeedItem.objects.filter(id__in=ids).delete()[0]
