"""The one error format of the JSON API (documented in docs/protocol.md).

Every error answer, from every endpoint, is::

    {"error": {"code": "invalid", "message": "…", "fields": {"days.0.tokens.3": ["…"]}}}

``code`` is a stable machine-readable word (DRF's error codes: ``invalid``,
``not_authenticated``, ``not_found``, ``throttled``, ``parse_error``,
``unsupported_media_type``, ``request_too_large``…, and each ServiceError's own:
``case_state``, ``venue_state``, ``no_signing_key``…), ``message`` is for people, ``fields``
appears on validation errors and maps a dotted path into the request body to its problems.
Services raise Django's ValidationError or a ServiceError (leavehome/errors.py), never DRF's;
the handler below maps both. An exception may add members of its own with ``error_extra`` (a
case upload names the bad visit's index as ``visit``).
"""

import json

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from leavehome.errors import ServiceError


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than the server accepts."
    default_code = "request_too_large"


# No request of the protocol nests deeper than a few levels (PROTOCOL §4); a limit far above
# that refuses bodies built to exhaust the parser's recursion or the validators' time.
MAX_JSON_DEPTH = 32


def _has_lone_surrogate(text: str) -> bool:
    # json accepts "\ud800" escapes; such a string cannot be encoded again, so rendering
    # any answer that echoes it (an "Unknown field" error) would fail with a 500.
    return not text.isascii() and any("\ud800" <= character <= "\udfff" for character in text)


def _check_parsed(value):
    """Refuse JSON nested deeper than MAX_JSON_DEPTH or holding a lone surrogate anywhere."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            if depth > MAX_JSON_DEPTH:
                raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
            for key, child in item.items():
                if _has_lone_surrogate(key):
                    raise exceptions.ParseError("JSON parse error - a lone surrogate in a string.")
                pending.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_JSON_DEPTH:
                raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and _has_lone_surrogate(item):
            raise exceptions.ParseError("JSON parse error - a lone surrogate in a string.")
    return value


def json_body_parse(raw: bytes):
    """A request body as JSON, or ``ParseError`` (400 ``parse_error``) for anything that is not
    UTF-8 JSON of sane depth and proper Unicode. Never raises anything else."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        # UnicodeDecodeError and JSONDecodeError are ValueErrors; RecursionError is the C
        # decoder giving up on thousands of nested brackets.
        message = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise exceptions.ParseError(f"JSON parse error - {message}") from None
    return _check_parsed(value)


def _refuse_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _flatten(detail, prefix=""):
    """DRF's nested error detail → {"a.0.b": ["message", …]}."""
    if isinstance(detail, dict):
        flat = {}
        for key, value in detail.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                # An object's own error is reported at the object's path ("_" for the body).
                path = prefix or "_"
            flat.update(_flatten(value, path))
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {prefix or "_": [str(item) for item in detail]} if detail else {}
        flat = {}
        for index, value in enumerate(detail):
            flat.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix or "_": [str(detail)]}


def _first_code(codes):
    while isinstance(codes, (dict, list)):
        if not codes:
            return "invalid"
        codes = next(iter(codes.values())) if isinstance(codes, dict) else codes[0]
    return codes or "invalid"


def _service_error_as_drf(exc: DjangoValidationError) -> exceptions.APIException:
    """A service's refusal as the DRF exception the rest of the handler formats.

    A field-level ValidationError keeps its paths (``message_dict``: dotted keys are already
    paths into the body); a ServiceError keeps its code and status.
    """
    if hasattr(exc, "error_dict"):
        return exceptions.ValidationError(exc.message_dict, code=getattr(exc, "code", None) or "invalid")
    if isinstance(exc, ServiceError):
        error = exceptions.APIException(exc.text, code=exc.code)
        error.status_code = exc.status
        return error
    return exceptions.ValidationError({"_": exc.messages}, code=getattr(exc, "code", None) or "invalid")


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, DjangoValidationError):
        exc = _service_error_as_drf(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handling and logging take over
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        body = {
            "code": _first_code(exc.get_codes()),
            "message": "The request is invalid; see fields.",
            "fields": fields,
        }
    else:
        detail = getattr(exc, "detail", str(exc))
        code = exc.get_codes() if hasattr(exc, "get_codes") else "error"
        body = {"code": code if isinstance(code, str) else _first_code(code), "message": str(detail)}
    body.update(getattr(exc, "error_extra", {}))
    headers = {key: value for key, value in response.items() if key in {"Retry-After", "WWW-Authenticate", "Allow"}}
    return Response({"error": body}, status=response.status_code, headers=headers)


def error_response(status: int, code: str, message: str, *, fields=None, headers=None) -> HttpResponse:
    """An error in the API's format from a plain Django view (DRF views get it from exception_handler)."""
    body = {"code": code, "message": message}
    if fields is not None:
        body["fields"] = fields
    response = HttpResponse(json.dumps({"error": body}), status=status, content_type="application/json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response
