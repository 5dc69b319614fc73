"""The OpenAPI document (/api/schema/) against what the API does, with schemathesis.

Every operation is called with generated requests, as a registered device (a fresh one per
example, since one operation deletes it), and each answer must be no server error and
conform to the document: a declared status code, content type, body schema and headers.
"""

import pytest
import schemathesis
from django.test import override_settings
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.phone.server import device_with_secret, wsgi_app_in_test

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def api_schema():
    return schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app_in_test())


@pytest.fixture
def throttles_off(settings):
    rates = dict.fromkeys(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        yield


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_openapi_schema(case, db, throttles_off):
    _, secret = device_with_secret()
    case.call_and_validate(headers={"Authorization": f"Bearer {secret}"}, checks=CHECKS)
