"""Bodies built to break the parser get the API's 400 JSON error, never a 500 page.

Each endpoint that reads JSON is tried, the visit upload too (which parses its body its own
way); ``raise_request_exception=False`` lets a 500 show as a 500 instead of an exception.
"""

import pytest
from django.core.cache import cache
from django.test import Client

from notifications.models import VisitToken
from tests.phone.server import bearer, device_with_secret

pytestmark = pytest.mark.django_db

DEEP_ARRAY = b"[" * 50_000 + b"]" * 50_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
MALFORMED = {
    "deep-array": DEEP_ARRAY,
    "deep-object": DEEP_OBJECT,
    "deep-inside-a-field": b'{"days": ' + b"[" * 40 + b"]" * 40 + b"}",
    "lone-surrogate-in-a-key": b'{"\\ud800": 1}',
    "lone-surrogate-in-a-value": b'{"platform": "\\udfff"}',
    "encoded-surrogate": '{"platform": "\ud800"}'.encode("utf-8", "surrogatepass"),
    "not-utf-8": b"\xff\xfe{}",
    "nan": b'{"days": NaN}',
}


@pytest.fixture
def client():
    cache.clear()  # throttle counters
    return Client(raise_request_exception=False)


@pytest.fixture
def secret():
    return device_with_secret()[1]


def _assert_parse_error(response, codes=("parse_error",)):
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] in codes
    assert body["error"]["message"]


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_device_registration_refuses_malformed_json(client, body):
    _assert_parse_error(client.post("/api/v1/devices", data=body, content_type="application/json"))


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_push_channel_refuses_malformed_json(client, secret, body):
    response = client.put("/api/v1/devices/me/push", data=body, content_type="application/json", **bearer(secret))
    _assert_parse_error(response)


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_visit_upload_refuses_malformed_json_and_stores_nothing(client, secret, body):
    response = client.post("/api/v1/visits", data=body, content_type="application/json", **bearer(secret))
    # The upload's own parser (orjson) takes 40 levels and refuses their shape instead.
    _assert_parse_error(response, codes=("parse_error", "invalid"))
    assert not VisitToken.objects.exists()


def test_proper_unicode_and_nesting_are_still_accepted(client, secret):
    assert client.post("/api/v1/devices", data=b"{}", content_type="application/json").status_code == 201
    # A well-formed body with a character outside the BMP is parsed and validated as usual.
    response = client.post(
        "/api/v1/visits", data='{"days": [], "note": "\U0001f600"}', content_type="application/json", **bearer(secret)
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] != "parse_error"
