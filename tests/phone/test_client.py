"""The reference phone against this server, over HTTP in-process: the whole path an app takes."""

import datetime as dt

import httpx
import pytest
from django.utils import timezone

from notifications.models import Device, VisitToken
from tests import phone
from tests.phone.server import case_publish_at, phone_http, venue_make, venue_qr_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def venue_and_text():
    venue = venue_make(name_en="Lucky Noodle House", name_zh="好運麵家")
    return venue, venue_qr_text(venue)


def _noon_yesterday():
    return timezone.make_aware(dt.datetime.combine(timezone.localdate() - dt.timedelta(days=1), dt.time(12)))


def test_register_scan_check_in_upload_and_get_notified(venue_and_text, django_capture_on_commit_callbacks):
    venue, text = venue_and_text
    noon = _noon_yesterday()
    device = phone.Phone(phone_http())
    device.register()
    code = device.scan(text)
    assert code.sub == str(venue.pk)
    assert code.name == {"en": "Lucky Noodle House", "zh": "好運麵家"}
    visit = device.check_in(code, int(noon.timestamp()) + 600)  # never checked out: closed after default_visit_seconds
    assert visit.t_out - visit.t_in == device.config["default_visit_seconds"]

    with django_capture_on_commit_callbacks(execute=True):
        accepted = device.upload()
    assert accepted == 17 + 1  # 12:10–16:10 touches 17 slots, plus the day token
    assert VisitToken.objects.filter(device_id=device.device_id).count() == accepted
    assert device.upload() == 0  # nothing new to send

    with django_capture_on_commit_callbacks(execute=True):
        case_publish_at(venue=venue, start=noon + dt.timedelta(hours=1), minutes=30)
    (item,) = device.poll()
    assert item["risk"] == "high"
    assert item["venue"]["name"]["zh"] == "好運麵家"
    again = device.poll()  # within the cursor's lag the same item may come again, nothing else
    assert {i["id"] for i in again} <= {item["id"]}
    assert len(device.notifications) == 1

    device.delete()
    assert not Device.objects.filter(pk=device.device_id).exists()
    with pytest.raises(phone.ApiError) as refused:
        device.poll()
    assert refused.value.status == 401


def test_the_phone_shows_the_advice_and_test_dates_in_both_languages(
    venue_and_text, django_capture_on_commit_callbacks
):
    venue, text = venue_and_text
    noon = _noon_yesterday()
    device = phone.Phone(phone_http())
    device.register()
    device.check_in(device.scan(text), int(noon.timestamp()), int(noon.timestamp()) + 3600)
    with django_capture_on_commit_callbacks(execute=True):
        device.upload()
        case_publish_at(venue=venue, start=noon, minutes=30, message_zh="個案曾在餐廳用膳。")
    (item,) = device.poll()
    exposure = noon.date()
    tests = [exposure + dt.timedelta(days=3), exposure + dt.timedelta(days=7)]

    english, chinese = device.shown(item, "en"), device.shown(item, "zh")
    assert english["test_dates"] == chinese["test_dates"] == tests
    assert english["lines"] == [
        f"A confirmed case was at Lucky Noodle House on {exposure} at about the same time as you. "
        f"Get tested on {tests[0]} and {tests[1]}, even if you feel well, and watch for symptoms for 14 days."
    ]  # no English message: the message is the advice, shown once
    assert chinese["lines"] == [
        f"您於{exposure}到訪好運麵家時，有確診者約在同一時間在場。即使沒有病徵，請於{tests[0]}及{tests[1]}接受檢測，"
        "並在14天內留意身體狀況。",
        "個案曾在餐廳用膳。",
    ]


def test_a_revoked_code_is_refused_by_the_phone(venue_and_text):
    from venues.services import venue_code_regenerate

    venue, old_text = venue_and_text
    venue_code_regenerate(venue=venue)
    statuses = []
    http = phone_http()
    http.event_hooks["response"].append(lambda response: statuses.append((response.url.path, response.status_code)))
    device = phone.Phone(http)
    device.fetch_config()
    with pytest.raises(phone.CodeRejected, match="revoked"):
        device.scan(old_text)
    venue.refresh_from_db()
    assert device.scan(venue_qr_text(venue)).ver == 2
    assert set(device.documents) == {"/.well-known/jwks.json", "/api/v1/revocations"}  # kept with their ETags
    assert ("/api/v1/revocations", 304) in statuses  # the second scan revalidated, nothing re-sent


def test_upload_is_split_at_max_tokens_per_upload(venue_and_text, settings):
    settings.LEAVEHOME_MAX_TOKENS_PER_UPLOAD = 7
    _, text = venue_and_text
    device = phone.Phone(phone_http())
    device.register()
    code = device.scan(text)
    start = int(_noon_yesterday().timestamp())
    device.check_in(code, start, start + 4 * 3600)  # 16 slot tokens + 1 day token: three requests
    assert device.upload() == 17
    assert VisitToken.objects.filter(device_id=device.device_id).count() == 17


@pytest.mark.django_db(transaction=True)
def test_the_phone_works_against_a_live_server(live_server, settings):
    """Over real HTTP, as the benchmarks use it: a base_url instead of an in-process transport."""
    settings.SITE_URL = live_server.url
    venue = venue_make()
    text = venue_qr_text(venue)
    with httpx.Client(base_url=live_server.url) as http:
        device = phone.Phone(http)
        device.register()
        code = device.scan(text)
        start = int(_noon_yesterday().timestamp())
        device.check_in(code, start, start + 1800)
        assert device.upload() == 3
        assert device.poll() == []
        assert device.sync_feed() == 1
        device.delete()
    assert not Device.objects.exists()


def test_a_confirmed_case_uploads_its_visits_with_a_one_time_code(venue_and_text):
    from notifications.case_uploads import case_upload_code_issue
    from notifications.models import Case
    from tests.phone.server import official
    from venues.services import venue_code_regenerate

    venue, text = venue_and_text
    case = Case.objects.create(reference="HK-P1", confirmed_on=timezone.localdate())
    _, code = case_upload_code_issue(case=case, actor=official())
    device = phone.Phone(phone_http())  # a case need not even be registered
    device.fetch_config()
    scanned = device.scan(text)
    start = int(_noon_yesterday().timestamp())
    device.check_in(scanned, start, start + 1800)
    device.check_in(scanned, start - 40 * 86400, start - 40 * 86400 + 600)  # past retention: not sent
    venue_code_regenerate(venue=venue)  # the scanned code is revoked now, the visit still counts
    assert device.upload_as_case(code) == 1
    with pytest.raises(phone.ApiError) as refused:
        device.upload_as_case(code)
    assert (refused.value.status, refused.value.body) == (404, {"error": "code_not_found"})
    assert case.visits.get().venue_id == venue.pk
