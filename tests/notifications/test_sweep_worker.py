"""The sweeps through real processes: a worker keeps its database backend, and uploads made,
publications committed and publications an official asked for while the broker is down are
matched once it is back, with nothing lost.

The broker of the outage tests is a private redis-server on a port of its own, started and
stopped by the test, so other runs sharing the machine's Redis are not disturbed.
"""

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from leavehome.lib.b64u import b64u_encode
from leavehome.models import AuditEntry
from notifications.models import Case, CaseVisit, MatchingRun, Notification, PublicationBacklog, UploadBacklog
from notifications.partitions import visit_token_partitions_ensure
from notifications.tasks import case_publish_and_match, match_publication
from notifications.visits import visit_tokens_ingest
from tests.conftest import _reset_broker_connections, database_url_for_subprocess, start_worker
from tests.notifications.official_fixtures import official_make
from tests.phone.derivation import visit_tokens
from tests.phone.server import bearer, device_with_secret
from venues.keys import signing_key_create
from venues.keystore import vk_decrypt
from venues.models import VenueCode
from venues.services import venue_register

pytestmark = [pytest.mark.postgres, pytest.mark.broker, pytest.mark.django_db(transaction=True)]

ZONE = ZoneInfo(settings.TIME_ZONE)
WAIT_SECONDS = 60


def _wait_for(condition, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _other_backends():
    """(pid, backend start) of every other session on the test database: the worker's."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid, backend_start FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return set(cursor.fetchall())


def test_a_worker_runs_many_tasks_on_one_database_backend(live_worker):
    # A publication chunk of nothing still records its run: one database write per task.
    day = timezone.localdate().isoformat()
    match_publication.delay(None, [], day).get(timeout=WAIT_SECONDS)  # the first task connects
    before = _other_backends()
    assert before, "the worker holds no database connection between tasks"
    for _ in range(8):
        match_publication.delay(None, [], day).get(timeout=WAIT_SECONDS)
    assert _other_backends() == before  # the same backend, not one started per task
    assert MatchingRun.objects.count() == 9


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own, as the broker that goes away."""

    def __init__(self, port):
        self.port, self.process = port, None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self):
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("private redis-server did not start")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def _draft_at_a_venue(reference):
    """A draft case 12:00–13:00 yesterday at a venue whose codes are old enough."""
    signing_key_create()
    owner = get_user_model().objects.create_user(username="owner", password="irrelevant 12345")
    venue = venue_register(owner=owner, name_en="Outage Cafe", name_zh="停電咖啡", category="catering")
    VenueCode.objects.filter(venue=venue).update(issued_at=timezone.now() - dt.timedelta(days=60))
    noon = dt.datetime.combine(timezone.localdate() - dt.timedelta(days=1), dt.time(12), tzinfo=ZONE)
    visit_token_partitions_ensure([noon.date()])
    case = Case.objects.create(reference=reference, confirmed_on=timezone.localdate())
    CaseVisit.objects.create(case=case, venue=venue, start=noon, end=noon + dt.timedelta(hours=1))
    return venue, noon, case


@pytest.fixture
def published_venue():
    """A published case 12:00–13:00 yesterday at a venue; its exposures are live."""
    venue, noon, case = _draft_at_a_venue("OUTAGE-1")
    case_publish_and_match(case=case, actor=None)  # in-process: no stored tokens yet, matches nothing
    return venue, noon, case


class Outage:
    """The project's broker is a private redis-server that is not running; ``recover`` starts it
    and a worker with beat embedded (the sweeps' ticks are what find the backlogs)."""

    def __init__(self, app, settings, tmp_path):
        self.app, self.settings, self.tmp_path = app, settings, tmp_path
        self.broker = PrivateRedis(_free_port())
        self.worker = None

    def recover(self):
        self.broker.start()
        queue = f"test-{uuid.uuid4().hex[:12]}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url_for_subprocess(),
            "CELERY_BROKER_URL": self.broker.url,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "UPLOAD_SWEEP_INTERVAL": "0.5",
            "PUBLICATION_SWEEP_INTERVAL": "0.5",
            "PUBLISH_REQUEST_GRACE_SECONDS": "0",
            "PYTHONUNBUFFERED": "1",
        }
        self.app.conf.update({"CELERY_TASK_DEFAULT_QUEUE": queue})
        self.worker = start_worker(queue, env, "--beat", "--schedule", str(self.tmp_path / "beat-schedule"))


@pytest.fixture
def outage(settings, tmp_path):
    from leavehome.celery import app

    outage = Outage(app, settings, tmp_path)
    overrides = {"CELERY_TASK_ALWAYS_EAGER": False, "CELERY_BROKER_URL": outage.broker.url}
    saved = {key: app.conf.get(key) for key in overrides}
    app.conf.update(overrides)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    _reset_broker_connections(app)
    try:
        yield outage
    finally:
        if outage.worker is not None:
            outage.worker.stop()
        outage.broker.stop()
        app.conf.update({**saved, "CELERY_TASK_DEFAULT_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE})
        _reset_broker_connections(app)


def _visit_body(venue, noon):
    start = int(noon.timestamp()) + 600
    days = visit_tokens(vk_decrypt(venue.codes.get()), start, start + 1200, settings.TIME_ZONE)
    return days, json.dumps(
        {"days": [{"date": d.isoformat(), "tokens": [b64u_encode(t) for t in ts]} for d, ts in days.items()]}
    )


def test_uploads_while_the_broker_is_down_are_matched_when_it_is_back(published_venue, outage):
    venue, noon, case = published_venue
    client = Client()
    devices = []
    _days, body = _visit_body(venue, noon)
    for _ in range(5):
        device, secret = device_with_secret()
        answer = client.post("/api/v1/visits", body, content_type="application/json", **bearer(secret))
        assert answer.status_code == 202, answer.content
        devices.append(device.pk)
    assert UploadBacklog.objects.count() == 5
    assert not Notification.objects.exists()

    outage.recover()
    _wait_for(lambda: not UploadBacklog.objects.exists(), "the sweep to drain the backlog")
    notified = sorted(Notification.objects.filter(case_visit__case=case).values_list("device_id", "risk"))
    assert notified == sorted((device_id, "high") for device_id in devices)


@pytest.fixture
def stored_visits():
    """Five phones that were at a venue 12:10–12:30 yesterday, their uploads already swept (no
    case then): only a publication's own matching can tell them."""
    venue, noon, case = _draft_at_a_venue("OUTAGE-2")
    days, _body = _visit_body(venue, noon)
    devices = [device_with_secret()[0] for _ in range(5)]
    for device in devices:
        visit_tokens_ingest(device=device, days=days)
    UploadBacklog.objects.all().delete()
    return case, [device.pk for device in devices]


def _notified(case):
    return sorted(Notification.objects.filter(case_visit__case=case).values_list("device_id", "risk"))


def test_a_publication_committed_while_the_broker_is_down_is_matched_when_it_is_back(stored_visits, outage):
    case, devices = stored_visits
    case_publish_and_match(case=case, actor=None)  # commits; its sweeps cannot be queued
    assert Case.objects.get(pk=case.pk).status == Case.Status.PUBLISHED
    assert PublicationBacklog.objects.filter(case=case).count() == 1
    assert not Notification.objects.exists()

    outage.recover()
    _wait_for(lambda: not PublicationBacklog.objects.exists(), "beat's sweep to match the publication")
    assert _notified(case) == sorted((device_id, "high") for device_id in devices)
    assert MatchingRun.objects.filter(case=case, direction="publication", notifications=5).count() == 1


def test_an_official_publishing_while_the_broker_is_down_is_told_and_the_case_published_later(
    stored_visits, outage, client
):
    case, devices = stored_visits
    client.force_login(official_make("official"))
    answer = client.post(reverse("admin:notifications_case_publish", args=[case.pk]), follow=True)
    assert answer.status_code == 200
    page = answer.content.decode()
    assert "task queue is unavailable right now. The publication is recorded" in page
    case.refresh_from_db()
    assert case.status == Case.Status.DRAFT and case.publish_requested_at is not None

    outage.recover()
    _wait_for(lambda: _notified(case) != [], "the case to be published and matched")
    _wait_for(lambda: not PublicationBacklog.objects.exists(), "its chunks to be matched")
    case.refresh_from_db()
    assert case.status == Case.Status.PUBLISHED and case.publish_requested_at is None
    assert _notified(case) == sorted((device_id, "high") for device_id in devices)
    publication = AuditEntry.objects.get(action="case.publish", object_id=str(case.pk))
    assert publication.actor.username == "official"
