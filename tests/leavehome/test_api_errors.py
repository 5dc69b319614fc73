from rest_framework import exceptions

from leavehome.api import exception_handler


def _body(exc):
    response = exception_handler(exc, {})
    return response.status_code, response.data


def test_validation_errors_name_each_field_by_its_path():
    exc = exceptions.ValidationError({"days": [{"tokens": {3: ["Not base64url of 16 bytes."]}}, {}]})
    status, body = _body(exc)
    assert status == 400
    assert body["error"]["fields"] == {"days.0.tokens.3": ["Not base64url of 16 bytes."]}
    assert body["error"]["code"] == "invalid"


def test_an_objects_own_error_is_reported_at_the_objects_path():
    exc = exceptions.ValidationError({"days": {"non_field_errors": ["Expected a list."]}, "non_field_errors": ["Bad."]})
    _, body = _body(exc)
    assert body["error"]["fields"] == {"days": ["Expected a list."], "_": ["Bad."]}


def test_throttled_answer_keeps_retry_after():
    status, body = _body(exceptions.Throttled(wait=42))
    response = exception_handler(exceptions.Throttled(wait=42), {})
    assert status == 429
    assert body["error"]["code"] == "throttled"
    assert response["Retry-After"] == "42"


def test_authentication_failure_has_code_and_message():
    status, body = _body(exceptions.NotAuthenticated())
    assert status == 401
    assert body == {"error": {"code": "not_authenticated", "message": "Authentication credentials were not provided."}}
