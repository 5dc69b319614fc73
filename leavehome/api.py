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
