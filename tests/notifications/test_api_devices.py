"""Device registration, authentication and deletion through the API (PROTOCOL §4)."""

import datetime as dt
import hashlib
import uuid

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from leavehome.lib.b64u import b64u_decode
from notifications.models import Device, PushChannel
from tests.phone.server import bearer, device_with_secret

pytestmark = pytest.mark.django_db

THROTTLES_OFF = {"device_register_ip": None, "visit_upload_device": None, "visit_upload_ip": None, "device_read": None}


@pytest.fixture
def api():
    return APIClient()


def test_config_states_the_protocol_parameters(api, settings):
    answer = api.get("/api/v1/config")
    assert answer.status_code == 200
    assert answer.json() == {
        "protocol": "lhs1",
        "slot_seconds": 900,
        "time_zone": settings.TIME_ZONE,
        "default_visit_seconds": 14400,
        "max_visit_seconds": 43200,
        "retention_days": 31,
        "max_tokens_per_upload": settings.LEAVEHOME_MAX_TOKENS_PER_UPLOAD,
        "venue_code_prefix": f"{settings.SITE_URL}/c/#",
        "case_upload_code_hours": 24,
        "max_case_upload_visits": 200,
    }


def test_registration_returns_a_32_byte_secret_stored_only_as_its_sha256(api):
    answer = api.post("/api/v1/devices", {}, format="json")
    assert answer.status_code == 201
    body = answer.json()
    assert set(body) == {"device_id", "token"}
    secret = b64u_decode(body["token"])
    assert len(secret) == 32
    device = Device.objects.get(pk=uuid.UUID(body["device_id"]))
    assert bytes(device.secret_hash) == hashlib.sha256(body["token"].encode()).digest()
    assert device.last_seen_on == timezone.localdate()


def test_registration_without_a_body_works_and_unknown_fields_are_refused(api):
    assert api.post("/api/v1/devices").status_code == 201
    before = Device.objects.count()
    answer = api.post("/api/v1/devices", {"name": "my phone"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"] == {"name": ["Unknown field."]}
    assert Device.objects.count() == before


def test_registration_is_throttled_per_ip_with_retry_after(api):
    rates = {**THROTTLES_OFF, "device_register_ip": "2/hour"}
    with override_settings(REST_FRAMEWORK={**_rest_framework(), "DEFAULT_THROTTLE_RATES": rates}):
        from django.core.cache import cache

        cache.clear()
        assert api.post("/api/v1/devices").status_code == 201
        assert api.post("/api/v1/devices").status_code == 201
        before = Device.objects.count()
        answer = api.post("/api/v1/devices")
        assert answer.status_code == 429
        assert int(answer["Retry-After"]) > 0
        assert answer.json()["error"]["code"] == "throttled"
        assert Device.objects.count() == before
        other_ip = api.post("/api/v1/devices", REMOTE_ADDR="10.9.8.7")
        assert other_ip.status_code == 201


def _rest_framework():
    from django.conf import settings

    return settings.REST_FRAMEWORK


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer wrong-secret", "Token abc", "Bearer a b", "Bearer " + "A" * 43],
    ids=["missing", "empty", "wrong", "other-scheme", "two-words", "unknown"],
)
def test_device_calls_without_a_valid_secret_get_401_json(api, header):
    device_with_secret()
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    for method, path in [
        ("get", "/api/v1/notifications"),
        ("post", "/api/v1/visits"),
        ("delete", "/api/v1/devices/me"),
        ("put", "/api/v1/devices/me/push"),
        ("delete", "/api/v1/devices/me/push"),
    ]:
        answer = getattr(api, method)(path, {}, format="json", **headers)
        assert answer.status_code == 401, (method, path)
        assert answer["WWW-Authenticate"].startswith("Bearer")
        assert answer.json()["error"]["code"] in {"not_authenticated", "authentication_failed"}
    assert Device.objects.count() == 1


def test_last_seen_is_written_at_most_once_a_day(api, django_assert_num_queries):
    device, secret = device_with_secret()
    Device.objects.filter(pk=device.pk).update(last_seen_on=timezone.localdate() - dt.timedelta(days=3))
    api.get("/api/v1/notifications", **bearer(secret))
    device.refresh_from_db()
    assert device.last_seen_on == timezone.localdate()
    # Second call of the day: the device lookup and the list, no UPDATE.
    with django_assert_num_queries(2) as queries:
        assert api.get("/api/v1/notifications", **bearer(secret)).status_code == 200
    assert not any(query["sql"].startswith("UPDATE") for query in queries.captured_queries)


def test_deleted_device_secret_gets_401(api):
    device, secret = device_with_secret()
    assert api.delete("/api/v1/devices/me", **bearer(secret)).status_code == 204
    assert not Device.objects.filter(pk=device.pk).exists()
    answer = api.get("/api/v1/notifications", **bearer(secret))
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "authentication_failed"


def test_push_channel_set_and_clear(api):
    device, secret = device_with_secret()
    body = {"kind": "fcm", "token": "f" * 20 + ":APA91b" + "x" * 140}
    answer = api.put("/api/v1/devices/me/push", body, format="json", **bearer(secret))
    assert answer.status_code == 204, answer.content
    assert PushChannel.objects.get(device=device).kind == "fcm"
    assert api.delete("/api/v1/devices/me/push", **bearer(secret)).status_code == 204
    assert not PushChannel.objects.filter(device=device).exists()


def test_push_channel_bad_body_is_400_with_field_paths(api):
    _, secret = device_with_secret()
    answer = api.put("/api/v1/devices/me/push", {"kind": "carrier-pigeon"}, format="json", **bearer(secret))
    assert answer.status_code == 400
    assert "kind" in answer.json()["error"]["fields"]
    not_object = api.put("/api/v1/devices/me/push", ["fcm"], format="json", **bearer(secret))
    assert not_object.status_code == 400
