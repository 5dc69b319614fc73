"""The retention purge: nothing older than the window survives; partitions are dropped, not emptied."""

import datetime as dt

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from leavehome.models import AuditEntry
from notifications import partitions
from notifications.devices import device_register
from notifications.models import (
    Case,
    CaseVisit,
    Device,
    ExposureFeedItem,
    ExposureToken,
    Notification,
    VisitToken,
)
from notifications.retention import retention_cutoff, retention_purge
from notifications.visits import visit_tokens_ingest
from venues.keys import signing_key_create
from venues.services import venue_register


@pytest.fixture(autouse=True)
def _forget_partitions():
    partitions._known_dates.clear()


def _partition_names():
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE 'notifications_visittoken_p%%'")
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def history(db):
    """Visits, a case, exposures, feed lines and devices on both sides of the cutoff."""
    today = timezone.localdate()
    cutoff = retention_cutoff(today)
    old_days = [cutoff - dt.timedelta(days=1), cutoff - dt.timedelta(days=3)]
    kept_days = [cutoff, today]
    device, _ = device_register()
    visit_tokens_ingest(device=device, days={day: [bytes([n]) * 16 for n in range(3)] for day in old_days + kept_days})
    if connection.vendor == "postgresql":
        # A stray row in the DEFAULT partition: a date that never had its own partition.
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO notifications_visittoken (date, token, device_id) VALUES (%s, %s, %s)",
                [cutoff - dt.timedelta(days=20), bytes(16), device.pk],
            )

    signing_key_create()
    owner = get_user_model().objects.create_user(username="owner", password="irrelevant 12345")
    venue = venue_register(owner=owner, name_en="Old Cafe", name_zh="舊咖啡", category="catering")
    old_start = timezone.make_aware(dt.datetime.combine(old_days[0], dt.time(12)))
    old_case = Case.objects.create(
        reference="old", confirmed_on=old_days[0], status=Case.Status.PUBLISHED, published_at=old_start
    )
    old_visit = CaseVisit.objects.create(
        case=old_case, venue=venue, start=old_start, end=old_start + dt.timedelta(hours=1)
    )
    new_start = timezone.make_aware(dt.datetime.combine(today - dt.timedelta(days=1), dt.time(12)))
    new_case = Case.objects.create(reference="new", confirmed_on=today, status=Case.Status.PUBLISHED)
    new_visit = CaseVisit.objects.create(
        case=new_case, venue=venue, start=new_start, end=new_start + dt.timedelta(hours=1)
    )
    for visit, day in [(old_visit, old_days[0]), (new_visit, today - dt.timedelta(days=1))]:
        ExposureToken.objects.create(case_visit=visit, date=day, token=bytes(16), risk="low")
        ExposureFeedItem.objects.create(date=day, token=bytes(16), risk="low", status="active")
        Notification.objects.create(device=device, case_visit=visit, risk="low")

    idle, _ = device_register()
    Device.objects.filter(pk=idle.pk).update(last_seen_on=cutoff - dt.timedelta(days=1))
    return {"cutoff": cutoff, "old_days": old_days, "kept_days": kept_days, "device": device, "idle": idle}


def test_the_purge_leaves_nothing_older_than_retention(history):
    cutoff = history["cutoff"]

    removed = retention_purge()

    assert set(VisitToken.objects.values_list("date", flat=True)) == set(history["kept_days"])
    assert not ExposureToken.objects.filter(date__lt=cutoff).exists()
    assert ExposureToken.objects.count() == 1
    assert not ExposureFeedItem.objects.filter(date__lt=cutoff).exists()
    assert list(Case.objects.values_list("reference", flat=True)) == ["new"]
    assert Notification.objects.count() == 1
    assert list(Device.objects.values_list("pk", flat=True)) == [history["device"].pk]
    assert removed["cases"] == 1 and removed["devices"] == 1
    entry = AuditEntry.objects.get(action="retention.purge")
    assert entry.detail["cutoff"] == cutoff.isoformat()


def test_a_second_purge_finds_nothing(history):
    retention_purge()
    again = retention_purge()
    assert again["visit_token_partitions_dropped"] == []
    assert (again["visit_tokens_deleted"], again["exposure_tokens"], again["cases"], again["devices"]) == (0, 0, 0, 0)


@pytest.mark.postgres
def test_on_postgresql_old_visit_tokens_go_by_dropping_their_partitions(history):
    old = {partitions.partition_name(day) for day in history["old_days"]}
    kept = {partitions.partition_name(day) for day in history["kept_days"]}
    assert old | kept <= _partition_names()

    removed = retention_purge()

    assert sorted(removed["visit_token_partitions_dropped"]) == sorted(old)
    # Only the stray row of the DEFAULT partition was deleted row by row.
    assert removed["visit_tokens_deleted"] == 1
    assert not old & _partition_names()
    assert kept <= _partition_names()


def test_the_purge_is_scheduled_by_celery_beat():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"notifications.retention_purge", "notifications.visit_token_partitions_ahead"} <= tasks
