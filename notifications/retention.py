"""The retention purge: nothing is kept longer than ``LEAVEHOME_RETENTION_DAYS`` (PROTOCOL §4).

Run daily by Celery beat (settings.CELERY_BEAT_SCHEDULE). What it removes, oldest first:

* visit tokens of dates before the cutoff: on PostgreSQL by detaching and dropping whole
  daily partitions (a catalogue change, no matter how many rows), plus any such rows that
  fell into the DEFAULT partition; on SQLite by bounded DELETEs;
* exposure tokens and exposure-feed lines of dates before the cutoff;
* cases none of whose visits ended within retention (with their case visits and
  notifications), and any notification created before the cutoff;
* devices not seen since the cutoff, with everything of theirs;
* login records (django-axes: client address and user agent) older than the lockout
  cool-off (leavehome/logins.py).

Every DELETE is bounded (``CHUNK`` rows per statement, each its own transaction), so the
purge never holds a long lock or a huge transaction. It is idempotent: a second run finds
nothing. What it removed is recorded in the audit trail.
"""

import datetime as dt

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from leavehome.audit import audit_record
from leavehome.lib.sql import on_postgres, sql_text
from leavehome.logins import login_records_purge
from notifications import partitions
from notifications.feed import exposure_feed_purge
from notifications.models import (
    Case,
    CaseVisit,
    Device,
    ExposureToken,
    Notification,
    UploadBacklog,
    UploadHour,
    VisitToken,
)

CHUNK = 10_000
DEVICE_CHUNK = 1_000


def retention_cutoff(today: dt.date | None = None) -> dt.date:
    """The oldest local date still retained."""
    today = today or timezone.localdate()
    return today - dt.timedelta(days=settings.LEAVEHOME_RETENTION_DAYS)


def _delete_chunked(table: str, where: sql.Composable, params: list, *, row_id: str) -> int:
    """DELETE the rows matching ``where`` CHUNK at a time, each chunk its own transaction."""
    if on_postgres() and row_id == "ctid":
        template = "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {where} LIMIT %s))"
    else:
        template = "DELETE FROM {table} WHERE {row_id} IN (SELECT {row_id} FROM {table} WHERE {where} LIMIT %s)"
    query = sql.SQL(template).format(table=sql.Identifier(table), where=where, row_id=sql.Identifier(row_id))
    text = sql_text(query)
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(text, [*params, CHUNK])
            total += cursor.rowcount
        if cursor.rowcount < CHUNK:
            return total


def _date_param(cutoff: dt.date):
    return VisitToken._meta.get_field("date").get_db_prep_value(cutoff, connection)


def _visit_tokens_purge(cutoff: dt.date) -> dict:
    before = sql.SQL("date < %s")
    if partitions.partitioned():
        dropped = []
        for name, _date in partitions.visit_token_partitions_before(cutoff):
            partitions.visit_token_partition_drop(name)
            dropped.append(name)
        stray = _delete_chunked(partitions.DEFAULT_PARTITION, before, [_date_param(cutoff)], row_id="ctid")
        return {"visit_token_partitions_dropped": dropped, "visit_tokens_deleted": stray}
    # SQLite: the plain table, by rowid.
    deleted = _delete_chunked(VisitToken._meta.db_table, before, [_date_param(cutoff)], row_id="rowid")
    return {"visit_token_partitions_dropped": [], "visit_tokens_deleted": deleted}


def retention_purge(*, today: dt.date | None = None) -> dict:
    """Delete everything older than the retention window; returns (and audits) what was removed."""
    cutoff = retention_cutoff(today)
    cutoff_start = timezone.make_aware(dt.datetime.combine(cutoff, dt.time.min))
    removed = {"cutoff": cutoff.isoformat(), **_visit_tokens_purge(cutoff)}
    removed["exposure_tokens"] = _delete_chunked(
        ExposureToken._meta.db_table, sql.SQL("date < %s"), [_date_param(cutoff)], row_id="id"
    )
    removed["exposure_feed_items"] = exposure_feed_purge(before=cutoff)
    # Backlog rows of expired dates (a sweep stopped for that long): their tokens are gone.
    removed["upload_backlog"] = _delete_chunked(
        UploadBacklog._meta.db_table, sql.SQL("date < %s"), [_date_param(cutoff)], row_id="id"
    )
    removed["upload_hours"] = UploadHour.objects.filter(hour__lt=cutoff_start).delete()[0]
    # Cases: once their last window ended before the cutoff nobody can still be matched.
    expired_cases = Case.objects.exclude(visits__end__gte=cutoff_start).filter(confirmed_on__lt=cutoff)
    removed["notifications"] = _ids_delete(
        Notification.objects.filter(case_visit__case__in=expired_cases).values_list("id", flat=True), Notification
    ) + _ids_delete(Notification.objects.filter(created_at__lt=cutoff_start).values_list("id", flat=True), Notification)
    removed["case_visits"] = _ids_delete(
        CaseVisit.objects.filter(case__in=expired_cases).values_list("id", flat=True), CaseVisit
    )
    removed["cases"] = _ids_delete(expired_cases.values_list("id", flat=True), Case)
    removed["devices"] = _ids_delete(
        Device.objects.filter(last_seen_on__lt=cutoff).values_list("id", flat=True), Device, chunk=DEVICE_CHUNK
    )
    removed["login_records"] = login_records_purge()
    with transaction.atomic():
        audit_record(
            actor=None, action="retention.purge", object_type="retention", object_id=cutoff.isoformat(), **removed
        )
    return removed


def _ids_delete(ids_queryset, model, *, chunk: int = CHUNK) -> int:
    """Delete rows by id in chunks through the ORM, so FK cascades (deliveries, tokens) go with them."""
    total = 0
    while True:
        ids = list(ids_queryset[:chunk])
        if not ids:
            return total
        with transaction.atomic():
            if model is Device:
                # No FK constraint from VisitToken (it would slow ingest): delete explicitly.
                VisitToken.objects.filter(device_id__in=ids).delete()
                UploadBacklog.objects.filter(device_id__in=ids).delete()
            model.objects.filter(pk__in=ids).delete()
        total += len(ids)
