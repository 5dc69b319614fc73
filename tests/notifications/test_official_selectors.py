"""The officials' figures: right, in local time, and bounded whatever the size of the tables."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from notifications import partitions
from notifications.devices import device_register
from notifications.models import Case, CaseVisit, MatchingRun, Notification, UploadHour
from notifications.official_selectors import chart_figures, dashboard_figures
from notifications.visits import visit_tokens_ingest
from tests.notifications.official_fixtures import devices_at_venue, draft_make, yesterday_at
from tests.phone.server import uploads_swept

# chart_figures: notifications, cases published, cases withdrawn, push outcomes, lag, tokens
# (a bounded count, then the grouped count or, on PostgreSQL beyond the bound, the estimates),
# the uploads' hourly figures.
CHART_QUERIES = 8


def _published_with_notifications(venue, *, reference, devices, risk="high"):
    case = draft_make(venue, reference=reference)
    Case.objects.filter(pk=case.pk).update(status=Case.Status.PUBLISHED, published_at=timezone.now())
    visit = CaseVisit.objects.get(case=case)
    Notification.objects.bulk_create(
        Notification(device=device_register()[0], case_visit=visit, risk=risk) for _ in range(devices)
    )
    MatchingRun.objects.create(
        direction="publication",
        case=case,
        date=yesterday_at(12).date(),
        notifications=devices,
        started_at=timezone.now() + dt.timedelta(seconds=2),
        duration_ms=500,
    )
    return case


def test_few_tokens_per_date_are_counted_exactly(venue):
    devices_at_venue(venue, 2)  # 5 tokens each, yesterday, never analysed
    tokens = chart_figures(days=7)["tokens"]
    assert not tokens["estimate"]
    assert tokens["counts"][-2] == 10


def test_the_charts_count_per_local_day_and_risk(venue):
    _published_with_notifications(venue, reference="HK-1", devices=3)
    _published_with_notifications(venue, reference="HK-2", devices=2, risk="low")
    charts = chart_figures(days=7)
    assert charts["days"][-1] == timezone.localdate().isoformat() and len(charts["days"]) == 7
    assert charts["notifications"]["high"][-1] == 3 and charts["notifications"]["low"][-1] == 2
    assert sum(charts["notifications"]["high"]) == 3
    assert charts["cases"]["published"][-1] == 2
    assert charts["lag"]["cases"] == ["HK-1", "HK-2"]
    assert all(2.4 < seconds < 10 for seconds in charts["lag"]["seconds"])  # 2 s to the run, 0.5 s of it
    assert charts["zone"] == "HKT"
    assert len(charts["hours"]) == 24


def test_the_dashboard_costs_the_same_queries_whatever_the_data(official_client, venue):
    counts = []
    for batch in (1, 5):
        for number in range(batch):
            _published_with_notifications(venue, reference=f"HK-{batch}-{number}", devices=2)
        with CaptureQueriesContext(connection) as charts:
            chart_figures()
        assert len(charts) == CHART_QUERIES
        with CaptureQueriesContext(connection) as page:
            assert official_client.get(reverse("admin:notifications_dashboard")).status_code == 200
        counts.append(len(page))
    # Session, user, permissions, the banner's switch, the table figures, the charts.
    assert counts[0] == counts[1] <= 24


@pytest.mark.postgres
def test_on_a_large_token_table_no_dashboard_query_scans_it(db, venue):
    day = timezone.localdate() - dt.timedelta(days=1)
    partitions._known_dates.clear()  # an earlier test's partition went with its rollback
    partitions.visit_token_partitions_ensure([day])
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO notifications_visittoken (date, token, device_id) "
            "SELECT %s, decode(md5(g::text), 'hex'), gen_random_uuid() FROM generate_series(1, 150000) g",
            [day],
        )
        cursor.execute("ANALYZE notifications_visittoken")
    with CaptureQueriesContext(connection) as queries:
        figures = dashboard_figures()
        charts = chart_figures()
    assert figures["visit_tokens"].estimate and figures["visit_tokens"].value > 100_000
    assert charts["tokens"]["estimate"] and charts["tokens"]["counts"][-2] > 100_000  # yesterday
    touching = [query["sql"] for query in queries.captured_queries if "notifications_visittoken" in query["sql"]]
    assert touching  # the bounded count and the partition estimates
    with connection.cursor() as cursor:
        for sql in touching:
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            # Either the catalogue (pg_class) or a scan cut short by LIMIT: never a full count.
            assert "pg_class" in sql or "Limit" in plan, plan


def test_the_upload_backlog_shows_the_lag_as_it_stands(official_client, venue):
    from notifications.models import UploadBacklog
    from notifications.official_selectors import upload_backlog_figures

    assert upload_backlog_figures() == {"waiting": upload_backlog_figures()["waiting"], "oldest_seconds": None}
    device = device_register()[0]
    UploadBacklog.objects.create(device_id=device.pk, date=timezone.localdate())
    UploadBacklog.objects.update(created_at=timezone.now() - dt.timedelta(seconds=30))
    figures = upload_backlog_figures()
    assert figures["waiting"].value == 1 and not figures["waiting"].estimate
    assert 29 < figures["oldest_seconds"] < 120
    page = official_client.get(reverse("admin:notifications_dashboard")).content.decode()
    assert '<td id="backlog-waiting">1</td>' in page


def test_uploads_per_hour_and_their_lag_come_from_the_sweeps_own_figures(venue, django_capture_on_commit_callbacks):
    devices = [device_register()[0] for _ in range(3)]
    today = timezone.localdate()
    for device in devices:
        visit_tokens_ingest(device=device, days={today: [bytes([n]) * 16 for n in range(4)]})
    with django_capture_on_commit_callbacks(execute=True):  # the figures are added after the commit
        assert uploads_swept() == 3
    uploads = chart_figures()["uploads"]
    assert uploads["uploads"][-1] == 3 and sum(uploads["uploads"]) == 3  # this hour, nothing before
    assert uploads["tokens"][-1] == 12
    assert 0 <= uploads["lag_mean_seconds"][-1] <= uploads["lag_max_seconds"][-1] < 60
    assert UploadHour.objects.get().uploads == 3  # one row for the hour, added to by each batch
