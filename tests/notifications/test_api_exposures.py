"""GET /api/v1/exposures: public, paged by id range, closed pages immutable, matched on the phone."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from notifications import feed
from notifications.cases import case_withdraw
from notifications.models import ExposureFeedItem
from tests import phone
from tests.phone.server import case_publish_at, official, phone_http, venue_make, venue_qr_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(feed, "PAGE_SIZE", 5)


@pytest.fixture
def published(django_capture_on_commit_callbacks):
    """A venue with a code a phone holds, and a published case there 12:00–13:00 local time yesterday."""
    venue = venue_make()
    text = venue_qr_text(venue)
    noon = timezone.make_aware(dt.datetime.combine(timezone.localdate() - dt.timedelta(days=1), dt.time(12)))
    with django_capture_on_commit_callbacks(execute=True):
        case_visit = case_publish_at(venue=venue, start=noon, minutes=60)
    return {"venue": venue, "text": text, "noon": noon, "case_visit": case_visit}


def test_feed_is_public_and_lists_the_published_tokens(published):
    body = APIClient().get("/api/v1/exposures").json()
    exposures = {
        (e.date.isoformat(), phone.b64u_encode(bytes(e.token)), e.risk)
        for e in published["case_visit"].exposure_tokens.all()
    }
    assert {(item["date"], item["t"], item["risk"]) for item in body["items"]} == exposures
    assert {item["status"] for item in body["items"]} == {"active"}
    assert set(body["items"][0]) == {"t", "risk", "date", "status"}
    assert set(body) == {"page", "items", "closed", "next"}


def test_closed_page_is_immutable_and_open_page_short_lived(small_pages, published):
    api = APIClient()
    first = feed.exposure_feed_first_page()
    closed = api.get("/api/v1/exposures", {"page": first})
    assert closed.json()["closed"] is True
    assert closed.json()["next"] == first + 1
    assert closed["Cache-Control"] == "public, max-age=31536000, immutable"
    last = ExposureFeedItem.objects.order_by("-id").first().id // 5
    head = api.get("/api/v1/exposures", {"page": last + 1})
    assert head.json() == {"page": last + 1, "items": [], "closed": False, "next": last + 1}
    assert head["Cache-Control"] == "public, max-age=60"
    # Without a page number the answer is "the oldest retained page", which moves: never immutable.
    assert "immutable" not in api.get("/api/v1/exposures")["Cache-Control"]


def test_etag_answers_304_when_unchanged(published):
    api = APIClient()
    answer = api.get("/api/v1/exposures", {"page": 0})
    etag = answer["ETag"]
    assert etag.startswith('"')
    again = api.get("/api/v1/exposures", {"page": 0}, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert api.get("/api/v1/exposures", {"page": 0}, HTTP_IF_NONE_MATCH='"other"').status_code == 200
    assert api.get("/api/v1/exposures", {"page": 0}, HTTP_IF_NONE_MATCH="W/" + etag).status_code == 304


def test_a_closed_page_stays_the_same_after_later_publications(
    small_pages, published, django_capture_on_commit_callbacks
):
    api = APIClient()
    first = feed.exposure_feed_first_page()
    before = api.get("/api/v1/exposures", {"page": first})
    assert before.json()["closed"]
    with django_capture_on_commit_callbacks(execute=True):
        case_publish_at(venue=published["venue"], start=published["noon"] - dt.timedelta(hours=3), minutes=30)
    after = api.get("/api/v1/exposures", {"page": first})
    assert after.content == before.content
    assert after["ETag"] == before["ETag"]


@pytest.mark.parametrize("page", ["-1", "x", "1.5"])
def test_bad_page_is_400(page):
    answer = APIClient().get("/api/v1/exposures", {"page": page})
    assert answer.status_code == 400
    assert "page" in answer.json()["error"]["fields"]


def test_reference_phone_matches_locally_and_sees_the_withdrawal(small_pages, published):
    device = phone.Phone(phone_http(), clock=lambda: published["noon"].timestamp() + 86400)
    device.fetch_config()
    code = device.scan(published["text"])
    noon = int(published["noon"].timestamp())
    device.check_in(code, noon + 1800, noon + 2400)  # 12:30–12:40: inside the window
    stranger = phone.Phone(phone_http())
    stranger.fetch_config()
    stranger.check_in(code, noon - 7200, noon - 5400)  # 10:00–10:30 the same day: the day token only

    pages = device.sync_feed()
    assert pages > 1  # several small pages, walked to the open head
    assert set(device.local_matches().values()) == {"high", "low"}
    stranger.sync_feed()
    assert set(stranger.local_matches().values()) == {"low"}

    case_withdraw(case=published["case_visit"].case, actor=official())
    device.sync_feed()
    assert device.local_matches() == {}


def test_a_page_costs_two_queries_whatever_its_size(published, django_assert_num_queries):
    first = feed.exposure_feed_first_page()  # ids (and so pages) depend on earlier tests
    with django_assert_num_queries(2):  # closedness, then the items (notifications/feed.py)
        body = APIClient().get("/api/v1/exposures", {"page": first}).json()
    assert body["items"]
