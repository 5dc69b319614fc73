"""The OpenAPI document (/api/schema/) against what the API does, with schemathesis.

Every operation is called with generated requests, as a registered device (a fresh one per
example, since one operation deletes it, holding one notification), and each answer must be no server error and
conform to the document: a declared status code, content type, body schema and headers.
"""

import datetime as dt

import pytest
import schemathesis
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.phone.server import case_visit_make, device_with_secret, notification_make, venue_make, wsgi_app_in_test

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def api_schema(db):
    # ``db`` first: fetching the schema goes through the app's middleware, which must meet
    # the test database (on SQLite it would otherwise open the development file).
    return schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app_in_test())


@pytest.fixture
def throttles_off(settings):
    rates = dict.fromkeys(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        yield


@pytest.fixture
def case_visit(db):
    return case_visit_make(venue=venue_make(), start=timezone.now() - dt.timedelta(hours=3))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_openapi_schema(case, case_visit, throttles_off):
    device, secret = device_with_secret()
    notification_make(device=device, case_visit=case_visit)  # so lists have an item to check
    case.call_and_validate(headers={"Authorization": f"Bearer {secret}"}, checks=CHECKS)
