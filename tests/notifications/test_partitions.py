"""Daily partitions of the visit-token table on PostgreSQL."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from notifications import partitions
from notifications.devices import device_register
from notifications.models import VisitToken
from notifications.tasks import visit_token_partitions_ahead, visit_token_partitions_analyze
from notifications.visits import visit_tokens_ingest


@pytest.fixture(autouse=True)
def _forget_partitions():
    partitions._known_dates.clear()


def _rows_in(table):
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}"')  # a name of ours, in a test
        return cursor.fetchone()[0]


def _partition_of(date):
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [partitions.partition_name(date)])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_on_sqlite_there_is_nothing_to_partition():
    if connection.vendor == "postgresql":
        pytest.skip("SQLite only")
    assert partitions.visit_token_partitions_ensure([timezone.localdate()]) == []


@pytest.mark.postgres
@pytest.mark.django_db
def test_an_upload_of_a_date_without_partition_creates_it():
    day = timezone.localdate() - dt.timedelta(days=9)
    assert _partition_of(day) is None
    device, _ = device_register()
    visit_tokens_ingest(device=device, days={day: [bytes(16)]})
    assert _partition_of(day) is not None
    assert _rows_in(partitions.partition_name(day)) == 1
    assert _rows_in(partitions.DEFAULT_PARTITION) == 0


@pytest.mark.postgres
@pytest.mark.django_db
def test_rows_that_fell_into_the_default_partition_move_into_the_new_one():
    day = timezone.localdate() - dt.timedelta(days=12)
    device, _ = device_register()
    VisitToken.objects.create(date=day, token=bytes(16), device=device)  # no partition yet: DEFAULT
    assert _rows_in(partitions.DEFAULT_PARTITION) == 1

    assert partitions.visit_token_partitions_ensure([day]) == [day]

    assert _rows_in(partitions.DEFAULT_PARTITION) == 0
    assert _rows_in(partitions.partition_name(day)) == 1
    assert partitions.visit_token_partitions_ensure([day]) == []  # idempotent


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_beat_task_creates_partitions_for_every_date_an_upload_may_name():
    visit_token_partitions_ahead.apply().get()
    today = timezone.localdate()
    for offset in (-31, 0, 1, partitions.PARTITIONS_AHEAD):
        assert _partition_of(today + dt.timedelta(days=offset)) is not None


@pytest.mark.postgres
@pytest.mark.django_db
def test_deleting_a_device_reads_its_rows_through_the_device_index():
    day = timezone.localdate()
    partitions.visit_token_partitions_ensure([day])
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO notifications_visittoken (date, token, device_id) "
            "SELECT %s, decode(md5(g::text), 'hex'), gen_random_uuid() FROM generate_series(1, 20000) g",
            [day],
        )
        cursor.execute("ANALYZE notifications_visittoken")
        device, _ = device_register()
        cursor.execute("EXPLAIN DELETE FROM notifications_visittoken WHERE device_id = %s", [device.pk])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"notifications_visittoken_p{day:%Y%m%d}_device_id_idx" in plan, plan
    # (Empty partitions may be "scanned": that costs nothing.)
    assert f"Seq Scan on notifications_visittoken_p{day:%Y%m%d}" not in plan, plan


@pytest.mark.django_db
def test_stored_tokens_estimate_counts_every_date_partition():
    device, _ = device_register()
    today = timezone.localdate()
    days = {today: [bytes([n]) * 16 for n in range(30)], today - dt.timedelta(days=1): [b"\xaa" * 16] * 1}
    visit_tokens_ingest(device=device, days=days)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE notifications_visittoken")
    assert partitions.visit_tokens_stored_estimate() == 31 == VisitToken.objects.count()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_beat_task_analyses_the_partitions_uploads_have_grown_and_only_those():
    device, _ = device_register()
    today = timezone.localdate()
    visit_tokens_ingest(device=device, days={today: [i.to_bytes(16, "big") for i in range(3000)]})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")  # this backend's counts, visible to the view now
        cursor.execute("SELECT 1")
    name = partitions.partition_name(today)
    assert name in visit_token_partitions_analyze()  # (with any other test's partition grown before)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [name])
        assert cursor.fetchone()[0] == 3000  # what the planner now knows of it
    assert name not in visit_token_partitions_analyze()  # nothing grew since
