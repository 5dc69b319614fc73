"""The matching core: every set-based statement that turns tokens into notifications.

Design. A visit is ``(date, token, device)`` in VisitToken; a published case visit is
``(date, token, case_visit, risk)`` in ExposureToken. Matching is their join on
``(date, token)``, grouped by ``(device, case_visit)``: a device that shares any slot token
is at high risk, one that shares only the day token at low risk (PROTOCOL §3). The result is
written with one ``INSERT … SELECT … ON CONFLICT (device_id, case_visit_id) DO UPDATE`` that
upgrades low to high and nothing else, and ``RETURNING`` the ids of the rows it created or
upgraded, which are handed to push delivery. No Python loop ever touches a token.

Two directions, both run by Celery workers, both reading only what has committed:

* uploads against live exposures, by a **sweep** (``uploads_sweep_batch``): an upload stores
  its tokens and, in the same transaction, one UploadBacklog row per date; a sweep claims
  the oldest backlog rows (up to ``UPLOAD_SWEEP_BATCH``), joins their devices' tokens of
  those dates against the exposure tokens of published cases, and deletes the rows in the
  transaction that writes the notifications. The upload itself touches no broker: if the
  broker is down, the backlog waits in PostgreSQL and no match is lost;
* a publication against stored visits, by a sweep too (``publications_sweep_batch``): a
  publication stores its exposure tokens and, in the same transaction, one
  PublicationBacklog row per chunk (one case, one date, at most ``CASE_VISIT_BATCH`` case
  visits); a sweep claims one chunk, joins its exposure tokens against the visit tokens of
  that date (``publication_match``) and deletes the row in the transaction that writes the
  notifications. One sweep task per chunk is queued on the publication's commit, so a big
  publication is shared by several workers at once; beat's ticks find any chunk whose task
  never reached the broker, so a broker down at that commit delays the match, never loses it.

Transaction boundaries. Each matching statement runs in a short transaction of its own,
after the writer committed, and sees what had committed when it started (READ COMMITTED).
Why no match is lost when an upload U and a publication P race: U's backlog row commits
with U's tokens, so the sweep statement S that matches U starts after U committed (it
claimed the row first). Likewise P's chunk rows commit with P's exposures, so the statement
T that matches a chunk of P starts after P committed. If P committed before S started, S
sees P's exposures. Otherwise P committed after S started, hence after U committed, so T
sees U's tokens. Either way one of the two joins the pair; if both do, the unique key makes
the second a no-op (or an upgrade). Each backlog row, an upload's or a chunk's, is deleted
only in the transaction that wrote its notifications, so a sweep that dies leaves it for the
next, and the unique key makes a sweep run twice, a redelivered task (``acks_late``, worker
killed), a chunk matched by an old ``match_publication`` message as well, or two concurrent
sweeps (which claim disjoint rows: SKIP LOCKED) harmless. A withdrawal racing a matching
statement is ordered by the case row: the statement takes FOR SHARE on the cases it matched,
the withdrawal FOR UPDATE (see ``_MATCH_SELECT``), so no notification of a withdrawn case is
left active. These races are tested in tests/notifications/test_matching_race.py, with each
transaction held open in turn.

Nothing here queues work: the functions return the ids of the notifications they created or
upgraded, and their callers (notifications/tasks.py) hand them to push delivery.

Every join between the two token sets includes ``date``: on PostgreSQL VisitToken is partitioned by it
(notifications/partitions.py), so a statement touches one day's partition, and a
distributed PostgreSQL (Citus) could place each date's tokens on one node.

Measured (PostgreSQL 15, one 3.5M-row date partition, hash indexes of migration 0005): a
publication chunk of 97 exposure tokens (48 slot tokens found, a day token 2,000 devices
share) joins in 1.7 ms (97 probes of the token hash index, 2,048 rows). docs/benchmarks.md has
the sweep's figures under load (B1, B3).

SQL is composed with psycopg.sql and runs unchanged on the embedded SQLite default (it
supports ``INSERT … SELECT … ON CONFLICT DO UPDATE … RETURNING``; it has no row locks, and
its single writer needs none), with values adapted by the model fields, so both backends
store the same representation.
"""

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from leavehome.lib.sql import in_list, on_postgres, placeholders, sql_run
from notifications.models import (
    Case,
    CaseVisit,
    Device,
    ExposureToken,
    MatchingRun,
    Notification,
    PublicationBacklog,
    UploadBacklog,
    UploadHour,
    VisitToken,
)

logger = logging.getLogger(__name__)

# Case visits per publication task: one date of a few hundred case visits is at most
# ~100 exposure tokens each, a join small enough for one short transaction.
CASE_VISIT_BATCH = 200
# Backlog rows per sweep statement: at 40 tokens an upload, 1,000 uploads read ~40,000
# visit tokens by index, tens of milliseconds; large enough that the per-statement cost
# vanishes per upload, small enough that a batch's row locks are held briefly.
UPLOAD_SWEEP_BATCH = 1000
# Notifications marked withdrawn per statement when a case is withdrawn.
WITHDRAW_BATCH = 5000


def _table(model) -> sql.Identifier:
    return sql.Identifier(model._meta.db_table)


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

# Both directions select the same rows: they differ only in ``source`` and ``where``, which
# name the side that drives the join. ``live`` keeps the cases still published and, on
# PostgreSQL, takes a FOR SHARE lock on just those (usually none: most uploads match
# nothing). That closes the race with a withdrawal, which locks the case FOR UPDATE before
# marking its notifications: if the withdrawal locked first, FOR SHARE waits for its commit
# and then rechecks the status on the new row version, so nothing is inserted for a
# withdrawn case; if this statement locked first, the withdrawal waits for this transaction
# and then sees (and marks) what it inserted. ``devices`` does the same for a device being
# deleted (notifications/devices.py locks it FOR UPDATE): a device deleted since the
# snapshot is skipped instead of failing the whole batch on the foreign key; the KEY SHARE
# lock is the one the foreign key check would take anyway.
_MATCH_SELECT = sql.SQL(
    """
    WITH matched AS MATERIALIZED (
        SELECT v.device_id, e.case_visit_id, cv.case_id, e.risk
        {source}
        JOIN {case_visit} AS cv ON cv.id = e.case_visit_id
        WHERE {where}
    ), live AS MATERIALIZED (
        SELECT c.id FROM {case} AS c
        WHERE c.id IN (SELECT case_id FROM matched) AND c.status = 'published'
        {case_lock}
    ), devices AS MATERIALIZED (
        SELECT d.id FROM {device} AS d
        WHERE d.id IN (SELECT device_id FROM matched)
        {device_lock}
    )
    SELECT m.device_id, m.case_visit_id, {risk}, 'active', %s, %s
    FROM matched AS m JOIN live ON live.id = m.case_id JOIN devices ON devices.id = m.device_id
    GROUP BY m.device_id, m.case_visit_id
    """
)


def _match_select(source: sql.Composable, where: sql.Composable) -> sql.Composable:
    # SQLite has no row locks: its writers are serialised by the database lock.
    postgres = on_postgres()
    return _MATCH_SELECT.format(
        risk=_RISK,
        source=source,
        case_visit=_table(CaseVisit),
        case=_table(Case),
        device=_table(Device),
        where=where,
        case_lock=sql.SQL("FOR SHARE OF c" if postgres else ""),
        device_lock=sql.SQL("FOR KEY SHARE OF d" if postgres else ""),
    )


def uploads_sweep_statement(*, backlog_ids: Sequence[int], dates: Iterable[dt.date]) -> tuple[sql.Composable, list]:
    """The SELECT of a sweep batch: the tokens of the claimed backlog rows joined with live exposures.

    Index: ``b.id`` finds the claimed rows by primary key; ``v.date IN (…)`` prunes VisitToken
    to the batch's dates at plan time, and each (device, date) reads its few dozen rows
    through the partition's hash index on device_id, each probed in ExposureToken's unique
    btree (date, token, case_visit_id). With few live exposures the planner may instead
    probe each of them in the partition's hash index on token and keep the claimed devices'
    rows. Either way no partition is scanned (tests/notifications/test_matching.py checks
    the plan).
    """
    db_dates = _db_dates(dates)
    ids_in, id_params = in_list(backlog_ids)
    source = sql.SQL(
        """FROM {backlog} AS b
        JOIN {visit} AS v ON v.device_id = b.device_id AND v.date = b.date
        JOIN {exposure} AS e ON e.date = v.date AND e.token = v.token"""
    ).format(backlog=_table(UploadBacklog), visit=_table(VisitToken), exposure=_table(ExposureToken))
    where = sql.SQL("b.id {ids_in} AND v.date IN ({dates})").format(ids_in=ids_in, dates=placeholders(len(db_dates)))
    now = _db_now()
    return _match_select(source, where), [*id_params, *db_dates, now, now]


@dataclass(frozen=True)
class SweepBatch:
    """What one sweep batch did: backlog rows matched and removed, notifications created or upgraded."""

    uploads: int
    notification_ids: list[int]


# Oldest first, so the lag stays bounded under load; SKIP LOCKED lets concurrent sweeps
# take disjoint batches instead of queueing behind each other. Index: the primary key.
_BACKLOG_CLAIM = sql.SQL("SELECT id, date, tokens, created_at FROM {backlog} ORDER BY id LIMIT %s {lock}")

# The hourly figures (UploadHour): added to by each batch. Index: the primary key (hour).
_HOURS_ADD = sql.SQL(
    """
    INSERT INTO {hours} (hour, uploads, tokens, lag_ms_total, lag_ms_max) VALUES {rows}
    ON CONFLICT (hour) DO UPDATE SET
        uploads = {hours}.uploads + excluded.uploads,
        tokens = {hours}.tokens + excluded.tokens,
        lag_ms_total = {hours}.lag_ms_total + excluded.lag_ms_total,
        lag_ms_max = {greatest}({hours}.lag_ms_max, excluded.lag_ms_max)
    """
)


def _upload_hours_add(claimed, now: dt.datetime) -> None:
    """Add a batch's uploads to the figures of the hours they arrived in (UTC hours)."""
    created_field = UploadBacklog._meta.get_field("created_at")
    hours: dict[dt.datetime, list[int]] = {}
    for _id, _date, tokens, created_at in claimed:
        arrived = created_field.to_python(created_at)
        if timezone.is_naive(arrived):  # SQLite hands back UTC text
            arrived = timezone.make_aware(arrived, dt.UTC)
        lag_ms = max(0, round((now - arrived).total_seconds() * 1000))
        figures = hours.setdefault(arrived.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0), [0, 0, 0, 0])
        figures[0] += 1
        figures[1] += tokens
        figures[2] += lag_ms
        figures[3] = max(figures[3], lag_ms)
    hour_field = UploadHour._meta.get_field("hour")
    params = []
    for hour, figures in sorted(hours.items()):
        params += [hour_field.get_db_prep_value(hour, connection), *figures]
    row = sql.SQL("({})").format(placeholders(5))
    query = _HOURS_ADD.format(
        hours=_table(UploadHour),
        rows=sql.SQL(", ").join([row] * len(hours)),
        greatest=sql.SQL("GREATEST" if on_postgres() else "MAX"),
    )
    sql_run(query, params)


def uploads_sweep_batch(*, limit: int = UPLOAD_SWEEP_BATCH) -> SweepBatch:
    """Match up to ``limit`` of the oldest backlog rows against live exposures, in one transaction.

    The claimed rows are locked, matched and deleted in the transaction that writes their
    notifications, so a sweep that fails or is killed leaves them in the backlog for the
    next one, and one that commits leaves nothing to redo: running it twice, or two at once,
    never notifies twice (the unique key) nor skips a row (the lock).
    """
    lock = sql.SQL("FOR UPDATE SKIP LOCKED" if on_postgres() else "")
    with transaction.atomic():
        claimed = sql_run(_BACKLOG_CLAIM.format(backlog=_table(UploadBacklog), lock=lock), [limit])
        if not claimed:
            return SweepBatch(uploads=0, notification_ids=[])
        backlog_ids = [row[0] for row in claimed]
        dates = {VisitToken._meta.get_field("date").to_python(row[1]) for row in claimed}
        select, params = uploads_sweep_statement(backlog_ids=backlog_ids, dates=dates)
        notification_ids = _upsert(select, params)
        ids_in, id_params = in_list(backlog_ids)
        sql_run(
            sql.SQL("DELETE FROM {backlog} WHERE id {ids_in}").format(backlog=_table(UploadBacklog), ids_in=ids_in),
            id_params,
        )
        # After the commit, in a statement of its own: the hour's row is shared by every
        # sweep, and holding its lock for the batch would make concurrent sweeps take turns.
        # A sweep dying in between loses one batch from the dashboard's figures, nothing more.
        transaction.on_commit(partial(_upload_hours_add, claimed, timezone.now()))
    return SweepBatch(uploads=len(backlog_ids), notification_ids=notification_ids)


def uploads_backlog_add(*, device_id: uuid.UUID, dates: Iterable[dt.date]) -> None:
    """Put a device's dates in the backlog, to be matched by the next sweep (inside the caller's transaction)."""
    UploadBacklog.objects.bulk_create(UploadBacklog(device_id=device_id, date=date) for date in sorted(set(dates)))


def publication_match_statement(*, case_visit_ids: Sequence[int], date: dt.date) -> tuple[sql.Composable, list]:
    """The SELECT of publication_match: a chunk's exposure tokens joined with the date's visit tokens.

    Index: the chunk's exposure tokens come from ExposureToken's case_visit_id index (at
    most ~100 per case visit and date); each probes the date's VisitToken partition through
    its hash index on token. ``v.date = %s`` names the partition so the planner prunes the
    others. A case withdrawn since the task was queued matches nothing.
    """
    (db_date,) = _db_dates([date])
    source = sql.SQL("FROM {visit} AS v JOIN {exposure} AS e ON e.date = v.date AND e.token = v.token").format(
        visit=_table(VisitToken), exposure=_table(ExposureToken)
    )
    where = sql.SQL("e.case_visit_id IN ({case_visits}) AND e.date = %s AND v.date = %s").format(
        case_visits=placeholders(len(case_visit_ids))
    )
    now = _db_now()
    return _match_select(source, where), [*case_visit_ids, db_date, db_date, now, now]


def publication_match(*, case_visit_ids: Sequence[int], date: dt.date) -> list[int]:
    """Match a published chunk (case visits of one case, one date) against stored visit tokens.

    Returns the ids of the notifications created or upgraded, for the caller to push.
    """
    if not case_visit_ids:
        return []
    with transaction.atomic():
        return _upsert(*publication_match_statement(case_visit_ids=case_visit_ids, date=date))


def publication_chunks(chunks: dict[dt.date, list[int]]) -> list[tuple[dt.date, list[int]]]:
    """A publication's matching work: (date, up to CASE_VISIT_BATCH case visit ids), by date."""
    out = []
    for date, case_visit_ids in sorted(chunks.items()):
        ordered = sorted(case_visit_ids)
        out += [(date, ordered[start : start + CASE_VISIT_BATCH]) for start in range(0, len(ordered), CASE_VISIT_BATCH)]
    return out


def publication_backlog_add(*, case_id: int, chunks: dict[dt.date, list[int]]) -> int:
    """Put a publication's chunks in the backlog (inside the publication's transaction); returns how many."""
    rows = [
        PublicationBacklog(case_id=case_id, date=date, case_visit_ids=ids) for date, ids in publication_chunks(chunks)
    ]
    PublicationBacklog.objects.bulk_create(rows)
    return len(rows)


@dataclass(frozen=True)
class PublicationChunk:
    """What one publication sweep batch did: the chunk it matched and the notifications it wrote."""

    case_id: int
    date: dt.date
    notification_ids: list[int]


def publications_sweep_batch() -> PublicationChunk | None:
    """Match the oldest unclaimed publication chunk and remove it from the backlog, in one transaction.

    None when no chunk is left (or every one left is being matched by another sweep). The
    row stays locked (SKIP LOCKED: concurrent sweeps take other chunks) while its
    ``publication_match`` statement runs, and is deleted in the transaction that writes its
    notifications and its MatchingRun: a sweep that dies leaves the chunk for the next, one that commits leaves
    nothing to redo, and the unique key makes a chunk matched twice notify nobody twice.
    """
    started = time.monotonic()
    with transaction.atomic():
        chunk = PublicationBacklog.objects.select_for_update(skip_locked=True).order_by("id").first()
        if chunk is None:
            return None
        notification_ids = []
        if chunk.case_visit_ids:
            statement = publication_match_statement(case_visit_ids=chunk.case_visit_ids, date=chunk.date)
            notification_ids = _upsert(*statement)
        # With the chunk's notifications: an empty backlog means every run is on the dashboard.
        matching_run_record(
            direction=MatchingRun.Direction.PUBLICATION,
            case_id=chunk.case_id,
            date=chunk.date,
            notifications=len(notification_ids),
            started=started,
        )
        PublicationBacklog.objects.filter(pk=chunk.pk).delete()
    return PublicationChunk(case_id=chunk.case_id, date=chunk.date, notification_ids=notification_ids)


def _upsert(select: sql.Composable, params: list) -> list[int]:
    query = _UPSERT.format(notification=_table(Notification), select=select)
    return [row[0] for row in sql_run(query, params)]


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
        done = len(sql_run(query, [_db_now(), case_id, WITHDRAW_BATCH]))
        total += done
        if done < WITHDRAW_BATCH:
            return total


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
