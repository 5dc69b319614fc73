"""The matching core: every set-based statement that turns tokens into notifications.

Design. A visit is ``(date, token, device)`` in VisitToken; a published case visit is
``(date, token, case_visit, risk)`` in ExposureToken. Matching is their join on
``(date, token)``, grouped by ``(device, case_visit)``: a device that shares any slot token
is at high risk, one that shares only the day token at low risk (PROTOCOL §3). The result is
written with one ``INSERT … SELECT … ON CONFLICT (device_id, case_visit_id) DO UPDATE`` that
upgrades low to high and nothing else, and ``RETURNING`` the ids of the rows it created or
upgraded, which are handed to push delivery. No Python loop ever touches a token.

Two directions, each a Celery task enqueued on the commit of the transaction that wrote its
input:

* uploads against live exposures (``uploads_match``): the tokens of one device and a few
  dates, joined against the exposure tokens of published cases;
* a publication against stored visits (``publication_match``): the exposure tokens of one
  case and one date (at most ``CASE_VISIT_BATCH`` case visits), joined against the visit
  tokens of that date, so a big publication is shared by several workers.

Transaction boundaries. Each statement runs in its own short transaction, inside the task,
after the writer committed. Why no match is lost when an upload U and a publication P race:
U's task takes its snapshot after U committed, P's task after P committed. If U committed
before P's task took its snapshot, P's task sees U's tokens. Otherwise U committed after P's
task started, hence after P committed, so U's task sees P's exposures. Either way one of
the two statements joins the pair; if both do, the unique key makes the second a no-op (or
an upgrade). The same key makes a redelivered task (``acks_late``, worker killed) harmless.
A withdrawal racing a matching statement is ordered by the case row: the statement takes
FOR SHARE on the cases it matched, the withdrawal FOR UPDATE (see ``_MATCH_SELECT``), so
no notification of a withdrawn case is left active. Both races are tested in
tests/notifications/test_matching_race.py, with each transaction held open in turn.

Every join between the two token sets includes ``date``: on PostgreSQL VisitToken is partitioned by it
(notifications/partitions.py), so a statement touches one day's partition, and a
distributed PostgreSQL (Citus) could place each date's tokens on one node.

Measured (PostgreSQL 15, one 3.5M-row date partition, hash indexes of migration 0005): a
publication chunk of 97 exposure tokens (48 slot tokens found, a day token 2,000 devices
share) joins in 1.7 ms (97 probes of the token hash index, 2,048 rows); an upload's match
reads the device's rows of two partitions through the device hash index in 0.1 ms.

SQL is composed with psycopg.sql and runs unchanged on the embedded SQLite default (it
supports ``INSERT … SELECT … ON CONFLICT DO UPDATE … RETURNING``), with values adapted by
the model fields, so both backends store the same representation.
"""

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterable, Sequence

from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from notifications.models import Case, CaseVisit, Device, ExposureToken, MatchingRun, Notification, VisitToken

logger = logging.getLogger(__name__)

# Case visits per publication task: one date of a few hundred case visits is at most
# ~100 exposure tokens each, a join small enough for one short transaction.
CASE_VISIT_BATCH = 200
# Notifications marked withdrawn per statement when a case is withdrawn.
WITHDRAW_BATCH = 5000


def _table(model) -> sql.Identifier:
    return sql.Identifier(model._meta.db_table)


def _placeholders(count: int) -> sql.Composable:
    return sql.SQL(", ").join([sql.Placeholder()] * count)


def _run(query: sql.Composable, params: Sequence) -> list[tuple]:
    """Execute a composed statement through Django's connection (so it joins the transaction)."""
    context = connection.connection if connection.vendor == "postgresql" else None
    text = query.as_string(context)
    with connection.cursor() as cursor:
        cursor.execute(text, params)
        return cursor.fetchall() if cursor.description else []


def _db_dates(dates: Iterable[dt.date]) -> list:
    field = VisitToken._meta.get_field("date")
    return [field.get_db_prep_value(date, connection) for date in sorted(set(dates))]


def _db_now():
    return Notification._meta.get_field("updated_at").get_db_prep_value(timezone.now(), connection)


# The insert shared by both directions. The conflict target is the unique constraint
# one_notification_per_device_case_visit (a btree on (device_id, case_visit_id)). The
# update fires only to upgrade an active low notification to high, and bumps updated_at so
# polling phones see it; rows the WHERE leaves alone are not RETURNed, so a redelivered task
# pushes nothing twice.
_UPSERT = sql.SQL(
    """
    INSERT INTO {notification} (device_id, case_visit_id, risk, status, created_at, updated_at)
    {select}
    ON CONFLICT (device_id, case_visit_id) DO UPDATE
        SET risk = excluded.risk, updated_at = excluded.updated_at
        WHERE {notification}.risk = 'low' AND excluded.risk = 'high' AND {notification}.status = 'active'
    RETURNING id
    """
)

# high if any matched exposure token is a slot token, else low (PROTOCOL §3).
_RISK = sql.SQL("CASE WHEN MAX(CASE WHEN m.risk = 'high' THEN 1 ELSE 0 END) = 1 THEN 'high' ELSE 'low' END")

# Both directions select the same rows: they differ only in ``where``, which names the side
# that drives the join. ``live`` keeps the cases still published and, on PostgreSQL, takes
# a FOR SHARE lock on just those (usually none: most uploads match nothing). That closes
# the race with a withdrawal, which locks the case FOR UPDATE before marking its
# notifications: if the withdrawal locked first, FOR SHARE waits for its commit and then
# rechecks the status on the new row version, so nothing is inserted for a withdrawn case;
# if this statement locked first, the withdrawal waits for this transaction and then sees
# (and marks) what it inserted.
_MATCH_SELECT = sql.SQL(
    """
    WITH matched AS MATERIALIZED (
        SELECT v.device_id, e.case_visit_id, cv.case_id, e.risk
        FROM {visit} AS v
        JOIN {exposure} AS e ON e.date = v.date AND e.token = v.token
        JOIN {case_visit} AS cv ON cv.id = e.case_visit_id
        WHERE {where}
    ), live AS MATERIALIZED (
        SELECT c.id FROM {case} AS c
        WHERE c.id IN (SELECT case_id FROM matched) AND c.status = 'published'
        {lock}
    )
    SELECT m.device_id, m.case_visit_id, {risk}, 'active', %s, %s
    FROM matched AS m JOIN live ON live.id = m.case_id
    GROUP BY m.device_id, m.case_visit_id
    """
)


def _match_select(where: sql.Composable) -> sql.Composable:
    return _MATCH_SELECT.format(
        risk=_RISK,
        visit=_table(VisitToken),
        exposure=_table(ExposureToken),
        case_visit=_table(CaseVisit),
        case=_table(Case),
        where=where,
        # SQLite has no row locks: its writers are serialised by the database lock.
        lock=sql.SQL("FOR SHARE OF c" if connection.vendor == "postgresql" else ""),
    )


def uploads_match_statement(*, device_id: uuid.UUID, dates: Iterable[dt.date]) -> tuple[sql.Composable, list]:
    """The SELECT of uploads_match: one device's stored tokens of ``dates`` joined with live exposures.

    Index: ``v.date IN (…)`` prunes to the dates' partitions. With many live exposures the
    device's rows come from the partition's hash index on device_id (a few hundred rows at
    most), each probed in ExposureToken's unique btree (date, token, case_visit_id); with few,
    the planner instead probes each live exposure token in the partition's hash index on
    token. Either way no partition is scanned (tests/notifications/test_matching.py checks
    the plan).
    """
    db_dates = _db_dates(dates)
    where = sql.SQL("v.device_id = %s AND v.date IN ({dates})").format(dates=_placeholders(len(db_dates)))
    now = _db_now()
    return _match_select(where), [Device._meta.pk.get_db_prep_value(device_id, connection), *db_dates, now, now]


def uploads_match(*, device_id: uuid.UUID, dates: Iterable[dt.date]) -> list[int]:
    """Match one device's stored tokens of ``dates`` against live exposures; returns new/upgraded ids."""
    dates = set(dates)
    if not dates:
        return []
    return _upsert_and_push(*uploads_match_statement(device_id=device_id, dates=dates))


def publication_match_statement(*, case_visit_ids: Sequence[int], date: dt.date) -> tuple[sql.Composable, list]:
    """The SELECT of publication_match: a chunk's exposure tokens joined with the date's visit tokens.

    Index: the chunk's exposure tokens come from ExposureToken's case_visit_id index (at
    most ~100 per case visit and date); each probes the date's VisitToken partition through
    its hash index on token. ``v.date = %s`` names the partition so the planner prunes the
    others. A case withdrawn since the task was queued matches nothing.
    """
    (db_date,) = _db_dates([date])
    where = sql.SQL("e.case_visit_id IN ({case_visits}) AND e.date = %s AND v.date = %s").format(
        case_visits=_placeholders(len(case_visit_ids))
    )
    now = _db_now()
    return _match_select(where), [*case_visit_ids, db_date, db_date, now, now]


def publication_match(*, case_visit_ids: Sequence[int], date: dt.date) -> list[int]:
    """Match a published chunk (case visits of one case, one date) against stored visit tokens."""
    if not case_visit_ids:
        return []
    return _upsert_and_push(*publication_match_statement(case_visit_ids=case_visit_ids, date=date))


def _upsert_and_push(select: sql.Composable, params: list) -> list[int]:
    from notifications.push.delivery import push_later  # the push engineer's module

    query = _UPSERT.format(notification=_table(Notification), select=select)
    with transaction.atomic():
        ids = [row[0] for row in _run(query, params)]
        if ids:
            push_later(notification_ids=ids)
    return ids


def notifications_withdraw(*, case_id: int) -> int:
    """Mark every active notification of a case withdrawn, in bounded statements; returns the count.

    Index: the subquery walks Notification's case_visit_id index for the case's few case
    visits. Call inside the withdrawal's transaction.
    """
    query = sql.SQL(
        """
        UPDATE {notification} SET status = 'withdrawn', updated_at = %s
        WHERE id IN (
            SELECT n.id FROM {notification} AS n
            JOIN {case_visit} AS cv ON cv.id = n.case_visit_id
            WHERE cv.case_id = %s AND n.status = 'active'
            LIMIT %s
        )
        RETURNING id
        """
    ).format(notification=_table(Notification), case_visit=_table(CaseVisit))
    total = 0
    while True:
        done = len(_run(query, [_db_now(), case_id, WITHDRAW_BATCH]))
        total += done
        if done < WITHDRAW_BATCH:
            return total


def visit_tokens_match_later(*, device_id, dates) -> None:
    """Match a device's new uploads of ``dates`` once the upload's transaction commits.

    Called by visit_tokens_ingest inside its transaction; the task runs after the commit,
    which is what makes the race with a publication safe (see the module comment).
    """
    from notifications.tasks import match_uploads

    iso_dates = sorted({date.isoformat() if isinstance(date, dt.date) else str(date) for date in dates})
    if iso_dates:
        device = str(device_id)
        transaction.on_commit(lambda: match_uploads.delay(device, iso_dates))


def publication_match_later(*, case_id: int, chunks: dict[dt.date, list[int]]) -> None:
    """Queue one publication task per (date, batch of case visits) once the publication commits."""
    from notifications.tasks import match_publication

    for date, case_visit_ids in sorted(chunks.items()):
        for start in range(0, len(case_visit_ids), CASE_VISIT_BATCH):
            batch = sorted(case_visit_ids)[start : start + CASE_VISIT_BATCH]
            transaction.on_commit(
                lambda batch=batch, date=date: match_publication.delay(case_id, batch, date.isoformat())
            )


def matching_run_record(*, direction, case_id=None, date=None, notifications: int, started: float) -> None:
    """Record a run for the dashboard (publication chunks always, uploads only when they matched)."""
    if direction == MatchingRun.Direction.UPLOAD and not notifications:
        return
    MatchingRun.objects.create(
        direction=direction,
        case_id=case_id,
        date=date,
        notifications=notifications,
        started_at=timezone.now() - dt.timedelta(seconds=time.monotonic() - started),
        duration_ms=round((time.monotonic() - started) * 1000),
    )
