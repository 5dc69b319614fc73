"""POST /api/v1/visits: all or nothing, with a JSON error naming each problem (PROTOCOL §4)."""

import base64
import datetime as dt
import json
import secrets

import psycopg
import pytest
from django.core.cache import cache
from django.db import close_old_connections, connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from leavehome.lib.b64u import b64u_encode
from notifications.devices import device_delete
from notifications.models import Device, VisitToken
from tests.phone.server import bearer, device_with_secret, row_counts

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    cache.clear()  # throttle counters
    return APIClient()


@pytest.fixture
def secret():
    return device_with_secret()[1]


def token():
    return b64u_encode(secrets.token_bytes(16))


def today():
    return timezone.localdate()


def upload(api, secret, body, **extra):
    return api.post("/api/v1/visits", json.dumps(body), content_type="application/json", **bearer(secret), **extra)


def test_upload_is_stored_and_counted(api, secret):
    day = {"date": today().isoformat(), "tokens": [token(), token(), token()]}
    yesterday = {"date": (today() - dt.timedelta(days=1)).isoformat(), "tokens": [token()]}
    answer = upload(api, secret, {"days": [day, yesterday]})
    assert answer.status_code == 202
    assert answer.json() == {"accepted": 4}
    assert VisitToken.objects.count() == 4


def test_uploading_the_same_tokens_again_is_harmless(api, secret):
    body = {"days": [{"date": today().isoformat(), "tokens": [token(), token()]}]}
    assert upload(api, secret, body).json() == {"accepted": 2}
    assert upload(api, secret, body).json() == {"accepted": 2}
    assert VisitToken.objects.count() == 2


def test_the_same_token_on_two_dates_is_two_visits(api, secret):
    same = token()
    body = {"days": [{"date": d.isoformat(), "tokens": [same]} for d in (today(), today() - dt.timedelta(days=2))]}
    assert upload(api, secret, body).json() == {"accepted": 2}


def _bad_bodies():
    now = timezone.localdate()
    good = token()
    return {
        "short-token": (
            {"days": [{"date": now.isoformat(), "tokens": [good, b64u_encode(b"x" * 15)]}]},
            "days.0.tokens.1",
        ),
        "long-token": ({"days": [{"date": now.isoformat(), "tokens": [b64u_encode(b"x" * 17)]}]}, "days.0.tokens.0"),
        "padded": ({"days": [{"date": now.isoformat(), "tokens": [good + "=="]}]}, "days.0.tokens.0"),
        "std-alphabet": ({"days": [{"date": now.isoformat(), "tokens": ["+/" + good[2:]]}]}, "days.0.tokens.0"),
        "non-canonical": ({"days": [{"date": now.isoformat(), "tokens": [good[:21] + "B"]}]}, "days.0.tokens.0"),
        "not-a-string": ({"days": [{"date": now.isoformat(), "tokens": [good, 12]}]}, "days.0.tokens.1"),
        "tokens-not-list": ({"days": [{"date": now.isoformat(), "tokens": good}]}, "days.0.tokens"),
        "too-old": (
            {"days": [{"date": (now - dt.timedelta(days=32)).isoformat(), "tokens": [good]}]},
            "days.0.date",
        ),
        "future": ({"days": [{"date": (now + dt.timedelta(days=2)).isoformat(), "tokens": [good]}]}, "days.0.date"),
        "date-format": ({"days": [{"date": now.strftime("%Y%m%d"), "tokens": [good]}]}, "days.0.date"),
        "date-newline": ({"days": [{"date": now.isoformat() + "\n", "tokens": [good]}]}, "days.0.date"),
        "no-date": ({"days": [{"tokens": [good]}]}, "days.0.date"),
        "unknown-field": ({"days": [], "device": "me"}, "device"),
        "unknown-day-field": ({"days": [{"date": now.isoformat(), "tokens": [good], "venue": "x"}]}, "days.0.venue"),
        "no-days": ({}, "days"),
        "days-not-list": ({"days": {"date": now.isoformat()}}, "days"),
        "body-not-object": (["days"], "_"),
    }


@pytest.mark.parametrize("case", list(_bad_bodies()))
def test_bad_upload_is_400_naming_the_field_and_stores_nothing(api, secret, case):
    valid_day = {"date": today().isoformat(), "tokens": [token() for _ in range(5)]}
    body, field = _bad_bodies()[case]
    if isinstance(body, dict) and isinstance(body.get("days"), list):
        body = {**body, "days": [*body["days"], valid_day]}  # the valid part must not be stored either
    before = row_counts()
    answer = upload(api, secret, body)
    assert answer.status_code == 400, answer.content
    error = answer.json()["error"]
    assert error["code"]
    assert field in error["fields"], error
    assert row_counts() == before


def test_the_oldest_and_newest_accepted_dates_are_the_retention_edges(api, secret, settings):
    oldest = today() - dt.timedelta(days=settings.LEAVEHOME_RETENTION_DAYS)
    body = {"days": [{"date": d.isoformat(), "tokens": [token()]} for d in (oldest, today() + dt.timedelta(days=1))]}
    assert upload(api, secret, body).status_code == 202


def test_too_many_tokens_is_400_and_stores_nothing(api, secret):
    with override_settings(LEAVEHOME_MAX_TOKENS_PER_UPLOAD=10):
        days = [{"date": today().isoformat(), "tokens": [token() for _ in range(6)]}] * 2
        before = row_counts()
        answer = upload(api, secret, {"days": days})
        assert answer.status_code == 400
        assert answer.json()["error"]["fields"]["days"] == ["At most 10 tokens per upload; got 12."]
        assert row_counts() == before
        assert upload(api, secret, {"days": days[:1]}).status_code == 202


def test_malformed_json_is_400(api, secret):
    answer = api.post("/api/v1/visits", "{days:", content_type="application/json", **bearer(secret))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "parse_error"


def test_body_over_the_size_limit_is_413_and_stores_nothing(api, secret):
    before = row_counts()
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
        body = {"days": [{"date": today().isoformat(), "tokens": [token() for _ in range(60)]}]}
        answer = upload(api, secret, body)
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "request_too_large"
    assert row_counts() == before


def test_wrong_secret_is_401_and_stores_nothing(api, secret):
    body = {"days": [{"date": today().isoformat(), "tokens": [token()]}]}
    before = row_counts()
    answer = upload(api, base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="), body)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "authentication_failed"
    assert row_counts() == before


def test_uploads_are_throttled_per_device_with_retry_after(api, secret, settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "visit_upload_device": "2/hour"}
    body = {"days": [{"date": today().isoformat(), "tokens": [token()]}]}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        assert upload(api, secret, body).status_code == 202
        assert upload(api, secret, body).status_code == 202
        before = row_counts()
        refused = upload(api, secret, {"days": [{"date": today().isoformat(), "tokens": [token()]}]})
        assert refused.status_code == 429
        assert int(refused["Retry-After"]) > 0
        assert refused.json()["error"]["code"] == "throttled"
        assert row_counts() == before
        _, other = device_with_secret()
        assert upload(api, other, body).status_code == 202


def test_uploads_are_throttled_per_ip(api, secret, settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "visit_upload_ip": "1/hour"}
    body = {"days": [{"date": today().isoformat(), "tokens": [token()]}]}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        assert upload(api, secret, body).status_code == 202
        _, other = device_with_secret()
        assert upload(api, other, body).status_code == 429
        assert upload(api, other, body, REMOTE_ADDR="10.1.2.3").status_code == 202


def test_wrong_content_type_is_415_and_stores_nothing(api, secret):
    body = json.dumps({"days": [{"date": today().isoformat(), "tokens": [token()]}]})
    answer = api.post("/api/v1/visits", body, content_type="text/plain", **bearer(secret))
    assert answer.status_code == 415
    assert answer.json()["error"]["code"] == "unsupported_media_type"
    assert VisitToken.objects.count() == 0


def test_wrong_method_is_405_json(api, secret):
    answer = api.get("/api/v1/visits", **bearer(secret))
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"


def test_a_full_upload_of_max_tokens_fits_the_body_limit(api, secret, settings):
    limit = settings.LEAVEHOME_MAX_TOKENS_PER_UPLOAD
    days = [{"date": (today() - dt.timedelta(days=n)).isoformat(), "tokens": []} for n in range(31)]
    for n in range(limit):
        days[n % 31]["tokens"].append(token())
    body = json.dumps({"days": days})
    assert len(body) < settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    answer = upload(api, secret, {"days": days})
    assert answer.json() == {"accepted": limit}
    assert VisitToken.objects.count() == limit


def test_an_upload_of_garbage_names_a_bounded_number_of_bad_tokens(api, secret):
    body = {"days": [{"date": today().isoformat(), "tokens": ["x"] * 3000}]}
    answer = upload(api, secret, body)
    assert answer.status_code == 400
    assert list(answer.json()["error"]["fields"]) == [f"days.0.tokens.{n}" for n in range(20)]


def _raw_upload(api, secret, raw: bytes):
    return api.generic("POST", "/api/v1/visits", raw, content_type="application/json", **bearer(secret))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"days": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",  # nested past any parser's depth
        b'{"\\ud800": 1}',  # a lone surrogate in a field name
        b'{"days": [{"date": "\xff\xfe", "tokens": []}]}',  # not UTF-8
        b"",
    ],
    ids=["deep", "lone-surrogate", "not-utf8", "empty"],
)
def test_bodies_no_parser_should_accept_are_400_json_and_store_nothing(api, secret, raw):
    before = row_counts()
    answer = _raw_upload(api, secret, raw)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "parse_error"
    assert row_counts() == before


@pytest.mark.parametrize("date", ["٢٠٢٦-١٢-٠١", "２０２６-１２-０１"], ids=["arabic-indic", "full-width"])
def test_dates_must_be_written_in_ascii_digits(api, secret, date):
    answer = upload(api, secret, {"days": [{"date": date, "tokens": [token()]}]})
    assert answer.status_code == 400
    assert "days.0.date" in answer.json()["error"]["fields"]


def test_a_stranger_gets_401_even_for_a_bad_body(api):
    stranger = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    assert upload(api, stranger, {"days": "nope"}).status_code == 401
    assert _raw_upload(api, stranger, b"{not json").status_code == 401
    missing = api.post("/api/v1/visits", "{}", content_type="application/json")
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "not_authenticated")
    assert missing["WWW-Authenticate"] == 'Bearer realm="api"'


def test_an_accepted_upload_is_not_cached(api, secret):
    answer = upload(api, secret, {"days": [{"date": today().isoformat(), "tokens": [token()]}]})
    assert (answer.status_code, answer["Cache-Control"]) == (202, "no-store")


def test_the_upload_is_described_in_the_openapi_document(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    operation = json.loads(schema.content)["paths"]["/api/v1/visits"]["post"]
    assert operation["operationId"] == "visits_upload"
    assert operation["security"] == [{"deviceSecret": []}]
    assert {"202", "400", "401", "413", "415", "429"} <= set(operation["responses"])
    assert "requestBody" in operation


@pytest.mark.postgres
def test_an_upload_is_one_prepared_statement_that_also_authenticates(api, secret, django_capture_on_commit_callbacks):
    def body():
        return {"days": [{"date": today().isoformat(), "tokens": [token(), token()]}]}

    # The first upload of a date may make its partition; the process knows it after commit.
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(api, secret, body()).status_code == 202
    with CaptureQueriesContext(connection) as queries:
        answer = upload(api, secret, body())
    assert answer.status_code == 202
    assert len(queries.captured_queries) == 1
    assert "FOR KEY SHARE" in queries[0]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%FOR KEY SHARE%%'")
        assert cursor.fetchone() == (1,)


def test_an_upload_records_that_the_device_called_today(api):
    device, secret = device_with_secret()
    Device.objects.filter(pk=device.pk).update(last_seen_on=today() - dt.timedelta(days=3))
    assert upload(api, secret, {"days": []}).status_code == 202
    assert Device.objects.get(pk=device.pk).last_seen_on == today()


def test_an_upload_of_a_deleted_device_is_401_and_stores_nothing(api):
    device, secret = device_with_secret()
    device_delete(device)
    before = row_counts()
    answer = upload(api, secret, {"days": [{"date": today().isoformat(), "tokens": [token()]}]})
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "authentication_failed")
    assert row_counts() == before


def test_the_upload_skips_the_page_middleware_and_keeps_the_headers_that_matter(api, secret):
    answer = upload(api, secret, {"days": [{"date": today().isoformat(), "tokens": [token()]}]})
    assert answer.status_code == 202
    assert answer.wsgi_request.resolver_match.route == "api/v1/visits"
    assert len(answer["X-Request-ID"]) == 32
    assert answer["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert (answer["X-Frame-Options"], answer["X-Content-Type-Options"]) == ("DENY", "nosniff")
    assert int(answer["Content-Length"]) == len(answer.content)
    # LocaleMiddleware and SessionMiddleware did not run: no language chosen, no session read.
    assert not answer.has_header("Content-Language")
    assert not hasattr(answer.wsgi_request, "session")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_upload_that_loses_its_database_connection_answers_503_json_and_the_next_is_stored(api, secret):
    connection.ensure_connection()
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    body = {"days": [{"date": today().isoformat(), "tokens": [token()]}]}
    lost = upload(api, secret, body)
    assert (lost.status_code, lost.json()["error"]["code"], lost["Retry-After"]) == (503, "unavailable", "5")
    close_old_connections()  # what the WSGI handler does as a request ends (the test client does not)
    assert upload(api, secret, body).status_code == 202
    assert VisitToken.objects.count() == 1
