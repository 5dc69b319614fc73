"""GET /api/v1/notifications: a device's own notifications, newest first, incremental."""

import datetime as dt
import json

import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from notifications.cases import case_withdraw
from notifications.models import Notification
from notifications.visits import visit_tokens_ingest
from tests import phone
from tests.phone.server import (
    bearer,
    case_publish_at,
    device_with_secret,
    official,
    phone_http,
    row_counts,
    uploads_swept,
    venue_make,
    venue_qr_text,
)
from venues.codes import qr_prefix
from venues.keys import jwks_document

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    cache.clear()
    return APIClient()


@pytest.fixture
def scene(django_capture_on_commit_callbacks):
    """A venue, a device that was there 12:00–13:00 local time yesterday, and helpers."""
    venue = venue_make(name_en="Lucky Noodle House", name_zh="好運麵家")
    code = phone.verify_venue_code(
        venue_qr_text(venue), prefix=qr_prefix(), issuer=settings.SITE_URL, jwks=jwks_document(), revocations={}
    )
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    noon = timezone.make_aware(dt.datetime.combine(yesterday, dt.time(12, 0)))
    device, secret = device_with_secret()

    def visit(start, minutes, only_day_token=False):
        t_in = int(start.timestamp())
        days = phone.visit_tokens(code.vk, t_in, t_in + minutes * 60, settings.TIME_ZONE)
        if only_day_token:
            days = {date: [phone.day_token(code.vk, date)] for date in days}
        visit_tokens_ingest(device=device, days=days)
        uploads_swept()

    def publish(start, minutes, **case_fields):
        with django_capture_on_commit_callbacks(execute=True):
            return case_publish_at(venue=venue, start=start, minutes=minutes, **case_fields)

    return {"venue": venue, "noon": noon, "device": device, "secret": secret, "visit": visit, "publish": publish}


def test_item_has_exactly_the_protocol_fields(api, scene):
    scene["visit"](scene["noon"], 60)
    case_visit = scene["publish"](scene["noon"] + dt.timedelta(minutes=30), 45, message_en="Get tested.")
    answer = api.get("/api/v1/notifications", **bearer(scene["secret"]))
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"items", "cursor"}
    assert answer["Cache-Control"] == "no-store"
    (item,) = body["items"]
    notification = Notification.objects.get()
    offset = timezone.localtime(scene["noon"]).strftime("%z")
    offset = offset[:3] + ":" + offset[3:]
    date = timezone.localtime(scene["noon"]).date().isoformat()
    assert item == {
        "id": notification.pk,
        "risk": "high",
        "status": "active",
        "venue": {"sub": str(scene["venue"].pk), "name": {"en": "Lucky Noodle House", "zh": "好運麵家"}},
        "date": date,
        "window": {"start": f"{date}T12:30:00{offset}", "end": f"{date}T13:15:00{offset}"},
        "message": {"en": "Get tested.", "zh": item["advice"]["zh"]},
        "advice": item["advice"],
        "test_dates": item["test_dates"],
        "created": item["created"],
    }
    assert "Lucky Noodle House" in item["advice"]["en"]  # no Chinese message: the advice stands in
    assert dt.datetime.fromisoformat(item["created"]) == notification.created_at
    assert case_visit.pk == notification.case_visit_id


def test_newest_first(api, scene):
    scene["visit"](scene["noon"] - dt.timedelta(hours=3), 240)
    first = scene["publish"](scene["noon"] - dt.timedelta(hours=2), 30)
    second = scene["publish"](scene["noon"], 30)
    Notification.objects.filter(case_visit=first).update(created_at=timezone.now() - dt.timedelta(hours=1))
    items = api.get("/api/v1/notifications", **bearer(scene["secret"])).json()["items"]
    assert [item["id"] for item in items] == [
        Notification.objects.get(case_visit=second).pk,
        Notification.objects.get(case_visit=first).pk,
    ]


def test_since_returns_only_changes_and_sees_upgrade_and_withdrawal(api, scene):
    scene["visit"](scene["noon"], 60, only_day_token=True)
    case_visit = scene["publish"](scene["noon"], 30)
    other = scene["publish"](scene["noon"] + dt.timedelta(hours=3), 30)
    assert set(Notification.objects.values_list("risk", flat=True)) == {"low"}
    # Both notifications are old news by the time the phone polls.
    Notification.objects.update(updated_at=timezone.now() - dt.timedelta(hours=1))
    first = api.get("/api/v1/notifications", **bearer(scene["secret"])).json()
    assert {item["risk"] for item in first["items"]} == {"low"}
    assert len(first["items"]) == 2

    unchanged = api.get("/api/v1/notifications", {"since": first["cursor"]}, **bearer(scene["secret"])).json()
    assert unchanged["items"] == []

    scene["visit"](scene["noon"], 60)  # the slot tokens arrive later: upgrade to high
    upgraded = api.get("/api/v1/notifications", {"since": first["cursor"]}, **bearer(scene["secret"])).json()
    assert [(item["id"], item["risk"]) for item in upgraded["items"]] == [
        (Notification.objects.get(case_visit=case_visit).pk, "high")
    ]

    case_withdraw(case=other.case, actor=official())
    later = api.get("/api/v1/notifications", {"since": first["cursor"]}, **bearer(scene["secret"])).json()
    statuses = {item["id"]: item["status"] for item in later["items"]}
    assert statuses[Notification.objects.get(case_visit=other).pk] == "withdrawn"


def test_cursor_stays_behind_now_so_late_commits_are_not_skipped(api, scene):
    scene["visit"](scene["noon"], 60)
    scene["publish"](scene["noon"], 30)
    body = api.get("/api/v1/notifications", **bearer(scene["secret"])).json()
    # A notification whose statement ran just before this poll but committed after it
    # carries an updated_at before the poll; the cursor is older still, so the next poll sees it.
    assert dt.datetime.fromisoformat(body["cursor"]) < timezone.now() - dt.timedelta(minutes=5)
    again = api.get("/api/v1/notifications", {"since": body["cursor"]}, **bearer(scene["secret"])).json()
    assert len(again["items"]) == 1


def test_a_device_sees_only_its_own_notifications(api, scene):
    scene["visit"](scene["noon"], 60)
    scene["publish"](scene["noon"], 30)
    _, stranger = device_with_secret()
    mine = Notification.objects.get()
    assert api.get("/api/v1/notifications", **bearer(stranger)).json()["items"] == []
    assert api.get(f"/api/v1/notifications/{mine.pk}", **bearer(scene["secret"])).status_code == 200
    before = list(Notification.objects.values()), row_counts()
    answer = api.get(f"/api/v1/notifications/{mine.pk}", **bearer(stranger))
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert api.get(f"/api/v1/notifications/{mine.pk + 1000}", **bearer(stranger)).status_code == 404
    assert (list(Notification.objects.values()), row_counts()) == before


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01T00:00:00Z", "1"])
def test_bad_since_is_400(api, since):
    _, secret = device_with_secret()
    answer = api.get("/api/v1/notifications", {"since": since}, **bearer(secret))
    assert answer.status_code == 400
    assert "since" in answer.json()["error"]["fields"]


def test_reference_phone_polls_incrementally(scene):
    scene["visit"](scene["noon"], 60)
    scene["publish"](scene["noon"], 30)
    device_phone = phone.Phone(phone_http())
    device_phone.secret = scene["secret"]
    items = device_phone.poll()
    assert [item["risk"] for item in items] == ["high"]
    assert json.dumps(device_phone.notifications)  # kept by id
    assert device_phone.notifications_cursor


def test_listing_costs_the_same_queries_for_one_or_many_notifications(api, scene, django_assert_max_num_queries):
    scene["visit"](scene["noon"] - dt.timedelta(hours=4), 12 * 60)
    scene["publish"](scene["noon"], 30)
    # Device lookup, then one joined read of the notifications with their case and venue.
    with django_assert_max_num_queries(2):
        assert len(api.get("/api/v1/notifications", **bearer(scene["secret"])).json()["items"]) == 1
    for hours in (-3, -2, 2, 3):
        scene["publish"](scene["noon"] + dt.timedelta(hours=hours), 30)
    with django_assert_max_num_queries(2):
        assert len(api.get("/api/v1/notifications", **bearer(scene["secret"])).json()["items"]) == 5
