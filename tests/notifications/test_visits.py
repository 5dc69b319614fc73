"""notifications.visits.visit_tokens_ingest: one bulk statement, idempotent, queued for the sweep."""

import datetime as dt
import secrets

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications.models import Notification, UploadBacklog, VisitToken
from notifications.visits import visit_tokens_ingest
from tests import phone
from tests.phone.server import case_publish_at, device_with_secret, uploads_swept, venue_make, venue_qr_text
from venues.codes import qr_prefix
from venues.keys import jwks_document

pytestmark = pytest.mark.django_db


def _days(count_per_day=3, dates=2):
    today = timezone.localdate()
    return {today - dt.timedelta(days=n): [secrets.token_bytes(16) for _ in range(count_per_day)] for n in range(dates)}


@pytest.mark.postgres
def test_ingest_is_one_insert_statement_on_postgres(django_capture_on_commit_callbacks):
    device, _ = device_with_secret()
    days = _days(count_per_day=2000, dates=2)
    visit_tokens_ingest(device=device, days=days)  # first call of the process may create partitions
    more = _days(count_per_day=2000, dates=2)
    with CaptureQueriesContext(connection) as queries:
        assert visit_tokens_ingest(device=device, days=more) == 4000
    inserts = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"].upper()]
    assert len(inserts) == 1
    assert "unnest" in inserts[0]
    assert VisitToken.objects.filter(device_id=device.pk).count() == 8000


def test_reingesting_stores_nothing_new_and_counts_the_same():
    device, _ = device_with_secret()
    days = _days()
    assert visit_tokens_ingest(device=device, days=days) == 6
    assert visit_tokens_ingest(device=device, days=days) == 6
    assert VisitToken.objects.count() == 6


def test_duplicates_within_one_request_count_once():
    device, _ = device_with_secret()
    token = secrets.token_bytes(16)
    today = timezone.localdate()
    assert visit_tokens_ingest(device=device, days={today: [token, token]}) == 1
    assert VisitToken.objects.count() == 1


def test_two_devices_may_hold_the_same_token():
    today, token = timezone.localdate(), secrets.token_bytes(16)
    for _ in range(2):
        device, _ = device_with_secret()
        visit_tokens_ingest(device=device, days={today: [token]})
    assert VisitToken.objects.filter(token=token).count() == 2


def test_an_upload_is_queued_in_the_backlog_and_matched_by_the_sweep(django_capture_on_commit_callbacks):
    venue = venue_make()
    code = phone.verify_venue_code(
        venue_qr_text(venue), prefix=qr_prefix(), issuer=settings.SITE_URL, jwks=jwks_document(), revocations={}
    )
    start = (timezone.now() - dt.timedelta(hours=3)).replace(second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        case_visit = case_publish_at(venue=venue, start=start, minutes=60)
    device, _ = device_with_secret()
    t_in = int(start.timestamp()) + 1800
    days = phone.visit_tokens(code.vk, t_in, t_in + 600, settings.TIME_ZONE)
    visit_tokens_ingest(device=device, days=days)
    assert not Notification.objects.exists()  # nothing is matched by the upload itself
    assert sorted(UploadBacklog.objects.values_list("device_id", "date")) == [
        (device.pk, date) for date in sorted(days)
    ]
    assert uploads_swept() == len(days)
    notification = Notification.objects.get(device=device)
    assert (notification.case_visit, notification.risk) == (case_visit, "high")
    assert not UploadBacklog.objects.exists()


def test_empty_upload_writes_nothing_and_schedules_nothing(django_capture_on_commit_callbacks):
    device, _ = device_with_secret()
    with django_capture_on_commit_callbacks() as callbacks:
        assert visit_tokens_ingest(device=device, days={}) == 0
    assert callbacks == []
