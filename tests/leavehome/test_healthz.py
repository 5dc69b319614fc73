import datetime as dt
import uuid
from unittest import mock

import pytest
from django.utils import timezone


@pytest.mark.django_db
def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"


@pytest.mark.django_db
def test_healthz_is_503_with_reason_when_database_fails(client):
    with mock.patch("leavehome.views.connection.cursor", side_effect=OSError("connection refused")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert "connection refused" in response.json()["problems"]["database"]


@pytest.fixture
def with_a_broker(settings):
    """As in production: tasks go through a broker (the in-memory one), so beat is expected."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.HEALTHZ_BEAT_MAX_AGE_SECONDS = 300


@pytest.mark.django_db
def test_healthz_is_503_before_beat_has_ticked_and_200_after(client, with_a_broker):
    from leavehome.heartbeats import heartbeat_record

    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["beat_tick_age_seconds"] is None
    assert set(response.json()["problems"]) == {"beat"}
    heartbeat_record()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert 0 <= response.json()["beat_tick_age_seconds"] < 300


@pytest.mark.django_db
def test_healthz_is_503_when_the_heartbeat_is_stale(client, with_a_broker):
    from leavehome.models import Heartbeat

    Heartbeat.objects.create(name="beat", at=timezone.now() - dt.timedelta(seconds=301))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "beat" in response.json()["problems"]
    assert response.json()["beat_tick_age_seconds"] > 300


def _only_problem(client, problem, age_field, more_than):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert set(response.json()["problems"]) == {problem}
    assert response.json()[age_field] > more_than


@pytest.mark.django_db
def test_healthz_is_503_when_uploads_wait_too_long_to_be_matched(client, settings):
    from notifications.models import UploadBacklog

    settings.HEALTHZ_BACKLOG_MAX_AGE_SECONDS = 900
    row = UploadBacklog.objects.create(device_id=uuid.uuid4(), date=timezone.localdate())
    assert client.get("/healthz").status_code == 200
    UploadBacklog.objects.filter(pk=row.pk).update(created_at=timezone.now() - dt.timedelta(seconds=901))
    _only_problem(client, "upload_backlog", "upload_backlog_age_seconds", 900)


@pytest.mark.django_db
def test_healthz_is_503_when_a_publication_waits_too_long_for_a_worker(client, settings):
    from notifications.models import Case, PublicationBacklog

    settings.HEALTHZ_PUBLICATION_BACKLOG_MAX_AGE_SECONDS = 300
    assert client.get("/healthz").json()["publication_backlog_age_seconds"] is None
    case = Case.objects.create(reference="STUCK-1", confirmed_on=timezone.localdate(), status="published")
    chunk = PublicationBacklog.objects.create(case=case, date=timezone.localdate(), case_visit_ids=[1])
    assert client.get("/healthz").status_code == 200
    PublicationBacklog.objects.filter(pk=chunk.pk).update(created_at=timezone.now() - dt.timedelta(seconds=301))
    _only_problem(client, "publication_backlog", "publication_backlog_age_seconds", 300)

    # A request to publish that no worker took counts the same way.
    PublicationBacklog.objects.all().delete()
    draft = Case.objects.create(reference="STUCK-2", confirmed_on=timezone.localdate())
    Case.objects.filter(pk=draft.pk).update(publish_requested_at=timezone.now() - dt.timedelta(seconds=400))
    _only_problem(client, "publication_backlog", "publication_backlog_age_seconds", 400)
