"""Matching through a real broker and a real Celery worker process: duplicates and redelivery.

The worker's pool child is killed while its matching statement waits on a lock the test
holds; ``acks_late`` + ``reject_on_worker_lost`` put the message back, a new child runs the
task again, and the unique key leaves exactly one notification.
"""

import datetime as dt
import os
import signal
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction
from django.utils import timezone

from notifications.devices import device_register
from notifications.models import Case, CaseVisit, MatchingRun, Notification, VisitToken
from notifications.partitions import visit_token_partitions_ensure
from notifications.tasks import case_publish_and_match, match_publication
from tests.phone.derivation import visit_tokens
from venues.keys import signing_key_create
from venues.keystore import vk_decrypt
from venues.models import VenueCode
from venues.services import venue_register

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.broker,
    pytest.mark.django_db(transaction=True),
]

ZONE = ZoneInfo(settings.TIME_ZONE)
WAIT_SECONDS = 60


def _wait_for(condition, what, seconds=WAIT_SECONDS):
    """Poll until ``condition()`` holds (the worker is another process); fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def exposed_case():
    """A device's stored tokens of a visit 12:10–12:30 yesterday, and a draft case there 12:00–13:00.

    The tokens are stored directly, not through ingest, so no upload task is in the queue
    ahead of the publication's.
    """
    signing_key_create()
    owner = get_user_model().objects.create_user(username="owner", password="irrelevant 12345")
    venue = venue_register(owner=owner, name_en="Worker Cafe", name_zh="工人咖啡", category="catering")
    VenueCode.objects.filter(venue=venue).update(issued_at=timezone.now() - dt.timedelta(days=60))
    noon = dt.datetime.combine(timezone.localdate() - dt.timedelta(days=1), dt.time(12), tzinfo=ZONE)
    visit_token_partitions_ensure([noon.date()])
    device, _ = device_register()
    start = int(noon.timestamp()) + 600
    days = visit_tokens(vk_decrypt(venue.codes.get()), start, start + 1200, settings.TIME_ZONE)
    VisitToken.objects.bulk_create(
        VisitToken(date=date, token=token, device=device) for date, tokens in days.items() for token in tokens
    )
    case = Case.objects.create(reference="W-1", confirmed_on=timezone.localdate())
    CaseVisit.objects.create(case=case, venue=venue, start=noon, end=noon + dt.timedelta(hours=1))
    return device, case, noon.date()


def test_a_publication_is_matched_by_the_worker_and_a_repeated_task_adds_nothing(live_worker, exposed_case):
    device, case, date = exposed_case
    case_publish_and_match(case=case, actor=None)  # commits; the task goes through the broker
    _wait_for(lambda: Notification.objects.filter(device=device, risk="high").exists(), "the publication's match")

    match_publication.delay(case.pk, list(case.visits.values_list("pk", flat=True)), date.isoformat())
    # Every publication run is recorded: wait for the second, which must have added nothing.
    _wait_for(lambda: MatchingRun.objects.filter(direction="publication").count() == 2, "the repeated task")
    assert sorted(MatchingRun.objects.values_list("notifications", flat=True)) == [0, 1]
    assert Notification.objects.count() == 1


def _pool_children(pid):
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # field 4 of /proc/PID/stat: the parent pid
            children.append(int(stat.parent.name))
    return children


def _matching_statement_waits_on_a_lock():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%%INSERT INTO \"notifications_notification\"%%'"
        )
        return cursor.fetchone()[0] > 0


def test_a_worker_killed_mid_task_is_redelivered_and_creates_no_duplicate(live_worker, exposed_case):
    device, case, _date = exposed_case
    locked, release = threading.Event(), threading.Event()

    def hold_the_notification_table():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("LOCK TABLE notifications_notification IN EXCLUSIVE MODE")
                locked.set()
                release.wait(WAIT_SECONDS)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_notification_table)
    holder.start()
    try:
        assert locked.wait(WAIT_SECONDS)
        case_publish_and_match(case=case, actor=None)
        _wait_for(_matching_statement_waits_on_a_lock, "the worker's matching statement to block")
        for child in _pool_children(live_worker.process.pid):
            os.kill(child, signal.SIGKILL)  # the task dies mid-statement, unacknowledged
    finally:
        release.set()
        holder.join(WAIT_SECONDS)

    _wait_for(lambda: Notification.objects.filter(device=device).exists(), "the redelivered task's match")
    assert list(Notification.objects.values_list("device_id", "risk")) == [(device.pk, "high")]
    assert live_worker.process.poll() is None  # the worker survived and replaced its child
