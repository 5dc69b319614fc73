"""``POST /api/v1/visits``: the busiest endpoint, as a plain Django view (PROTOCOL §4).

At Hong Kong's peak hour phones send hundreds of uploads a second, so this path does only
what the contract needs, each step once: the bearer secret is checked for shape, the
device's and the address's rate limits are counted in one Redis round trip
(leavehome/ratelimit.py), the body is parsed by orjson and validated by a plain loop, and the
device is authenticated, locked against deletion, recorded as seen and its tokens and backlog
rows written in one prepared statement (notifications/visits.py). Nothing is queued: the matching sweep finds the
upload in the backlog. DRF's request wrapping, content negotiation, throttle classes and
serializers cost several times that, so they are not used here; the answers (statuses, the
error body of leavehome/api.py, headers) are the same as the DRF endpoints', and the OpenAPI
document describes this endpoint through ``VisitUploadSchemaView``.
"""

import base64
import datetime as dt
import hashlib
import re

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from leavehome.api import error_response
from leavehome.metrics import upload_count
from leavehome.ratelimit import Limit, client_address, rate_limits_hit
from notifications import tasks
from notifications.api import serializers as s
from notifications.api.authentication import DeviceAuthentication, IsDevice
from notifications.api.views import RETRY_AFTER, error_responses
from notifications.devices import device_authenticate
from notifications.visits import visit_upload_store

# ASCII digits only: ``\d`` would accept Arabic-Indic or full-width digits.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TOKEN = re.compile(s.TOKEN_PATTERN)
# base64url of 16 bytes decodes with two padding characters.
_PADDING = "=="


class UploadInvalid(Exception):
    """The body breaks the contract; ``fields`` maps a dotted path to its problems."""

    def __init__(self, fields: dict[str, list[str]], code: str = "invalid"):
        super().__init__(fields)
        self.fields, self.code = fields, code


def _tokens(value, path: str, fields: dict) -> list[bytes]:
    if not isinstance(value, list):
        fields[path] = ["Must be a list of tokens."]
        return []
    tokens, errors = [], 0
    for index, text in enumerate(value):
        if isinstance(text, str) and _TOKEN.fullmatch(text):
            tokens.append(base64.urlsafe_b64decode(text + _PADDING))
            continue
        fields[f"{path}.{index}"] = ["Not base64url without padding of exactly 16 bytes."]
        errors += 1
        if errors == s.MAX_TOKEN_ERRORS:
            break
    return tokens


def _date(value, path: str, fields: dict, oldest: dt.date, newest: dt.date) -> dt.date | None:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        fields[path] = ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]
        return None
    try:
        date = dt.date.fromisoformat(value)
    except ValueError:
        fields[path] = ["Not a valid date."]
        return None
    if date < oldest:
        fields[path] = [f"Older than the retention period; the oldest accepted is {oldest}."]
    elif date > newest:
        fields[path] = ["In the future."]
    else:
        return date
    return None


def upload_parse(body) -> dict[dt.date, list[bytes]]:
    """A decoded upload body → {date: tokens}, repeated dates merged; raises UploadInvalid.

    The same rules as the schema of ``VisitUploadSerializer``: unknown fields are errors,
    every problem is named by its path (at most MAX_TOKEN_ERRORS bad tokens per list).
    """
    if not isinstance(body, dict):
        raise UploadInvalid({"_": ["Invalid data. Expected an object."]})
    fields: dict[str, list[str]] = {name: ["Unknown field."] for name in body if name != "days"}
    days_value = body.get("days")
    if "days" not in body:
        fields["days"] = ["This field is required."]
    elif not isinstance(days_value, list):
        fields["days"] = ["Expected a list of items."]
    today = timezone.localdate()
    oldest, newest = today - dt.timedelta(days=settings.LEAVEHOME_RETENTION_DAYS), today + dt.timedelta(days=1)
    days: dict[dt.date, list[bytes]] = {}
    count = 0
    for index, day in enumerate(days_value if isinstance(days_value, list) else []):
        path = f"days.{index}"
        if not isinstance(day, dict):
            fields[path] = ["Invalid data. Expected an object."]
            continue
        for name in day:
            if name not in ("date", "tokens"):
                fields[f"{path}.{name}"] = ["Unknown field."]
        date = _date(day["date"], f"{path}.date", fields, oldest, newest) if "date" in day else None
        if "date" not in day:
            fields[f"{path}.date"] = ["This field is required."]
        if "tokens" not in day:
            fields[f"{path}.tokens"] = ["This field is required."]
            continue
        tokens = _tokens(day["tokens"], f"{path}.tokens", fields)
        count += len(tokens)
        if date is not None:
            days.setdefault(date, []).extend(tokens)
    if fields:
        raise UploadInvalid(fields)
    limit = settings.LEAVEHOME_MAX_TOKENS_PER_UPLOAD
    if count > limit:
        raise UploadInvalid({"days": [f"At most {limit} tokens per upload; got {count}."]}, code="too_many")
    return days


def _bearer_secret(request) -> str | None:
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(parts) == 2 and parts[0].lower() == "bearer" and parts[1].isascii():
        return parts[1]
    return None


def _unauthenticated(message: str):
    return error_response(401, "authentication_failed", message, headers={"WWW-Authenticate": 'Bearer realm="api"'})


@csrf_exempt
def visit_upload(request):
    """Store a device's visit tokens: all or nothing; re-uploading is harmless."""
    if request.method != "POST":
        return error_response(
            405, "method_not_allowed", f'Method "{request.method}" not allowed.', headers={"Allow": "POST"}
        )
    secret = _bearer_secret(request)
    if secret is None:
        if not request.META.get("HTTP_AUTHORIZATION"):
            return error_response(
                401,
                "not_authenticated",
                "Authentication credentials were not provided.",
                headers={"WWW-Authenticate": 'Bearer realm="api"'},
            )
        return _unauthenticated("The Authorization header must be 'Bearer' and the device secret.")
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    # Keyed by the secret's hash, not the device id: counted before any database work, so a
    # flood of uploads costs the database nothing.
    secret_key = hashlib.sha256(secret.encode("ascii")).hexdigest()[:32]
    wait = rate_limits_hit(
        [
            Limit("visit_upload_ip", client_address(request.META), rates["visit_upload_ip"]),
            Limit("visit_upload_device", secret_key, rates["visit_upload_device"]),
        ]
    )
    if wait is not None:
        return error_response(
            429,
            "throttled",
            f"Request was throttled. Expected available in {wait} seconds.",
            headers={"Retry-After": str(wait)},
        )
    if request.content_type != "application/json":
        return error_response(
            415, "unsupported_media_type", f'Unsupported media type "{request.content_type}" in request.'
        )
    try:
        body = orjson.loads(request.body)
    except RequestDataTooBig:
        return error_response(413, "request_too_large", "The request body is larger than the server accepts.")
    except orjson.JSONDecodeError as error:
        device = device_authenticate(secret)
        if device is None:
            return _unauthenticated("Unknown device secret.")
        return error_response(400, "parse_error", f"JSON parse error - {error}")
    try:
        days = upload_parse(body)
    except UploadInvalid as error:
        # A stranger learns nothing of the contract's details: 401 first, as DRF answers.
        if device_authenticate(secret) is None:
            return _unauthenticated("Unknown device secret.")
        return error_response(400, error.code, "The request is invalid; see fields.", fields=error.fields)
    accepted = visit_upload_store(secret=secret, days=days)
    if accepted is None:
        return _unauthenticated("Unknown device secret.")
    tasks.uploads_match_soon()
    upload_count(tokens=accepted)
    response = HttpResponse(orjson.dumps({"accepted": accepted}), status=202, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


class VisitUploadSchemaView(APIView):
    """The OpenAPI description of ``visit_upload``; no request is routed here.

    DRF's schema generator reads an endpoint's view class from ``callback.cls`` (which
    ``APIView.as_view`` sets); pointing the plain view's ``cls`` here documents it like the
    other endpoints, from the serializers that state its contract.
    """

    authentication_classes = [DeviceAuthentication]
    permission_classes = [IsDevice]

    @extend_schema(
        operation_id="visits_upload",
        request=s.VisitUploadSerializer,
        parameters=[RETRY_AFTER],
        responses={202: s.AcceptedSerializer, **error_responses(400, 401, 413, 415, 429)},
        tags=["visits"],
    )
    def post(self, request):
        """Upload visit tokens: all or nothing; re-uploading is harmless."""
        raise NotImplementedError  # pragma: no cover (requests go to visit_upload)


visit_upload.cls = VisitUploadSchemaView
visit_upload.initkwargs = {}
