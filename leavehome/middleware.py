"""Project middleware. First, what every request passes through: its request id, its log
line, its metric. Then the shortcut of the phone's busiest routes past the page middleware,
``Cache-Control`` on pages behind login, and 503 when the database is gone.

The request id is nginx's ``X-Request-ID`` (deploy/nginx-proxy.conf) when it looks like one,
else a new one, so a request served by gunicorn alone is still traceable; it is answered in
the response's ``X-Request-ID`` and stamped on every log line of the request and of the
tasks it enqueues (leavehome/logs.py). The request's own line names the route pattern, not
the path: a path may hold a token (an e-mail verification link), a pattern never does.
"""

import logging
import re
import time
import uuid

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.urls import NoReverseMatch, resolve, reverse
from django.utils.translation import gettext as _

from leavehome.api import error_response
from leavehome.logs import request_id_var
from leavehome.metrics import http_request_observe

logger = logging.getLogger("leavehome.request")
_database_logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# nginx's $request_id is 32 hex digits; anything else a client sent is replaced, so a log
# line cannot be forged or flooded through the header.
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{8,64}")


def request_route(request) -> str:
    """The URL pattern that served ``request`` ("api/v1/visits"), or "unmatched"."""
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else "unmatched"


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.log_requests = settings.LOG_REQUESTS

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            seconds = time.perf_counter() - started
            response[REQUEST_ID_HEADER] = request_id
            route = request_route(request)
            http_request_observe(route=route, method=request.method, status=response.status_code, seconds=seconds)
            if not self.log_requests:
                return response
            logger.info(
                "%s %s %s",
                request.method,
                route,
                response.status_code,
                extra={
                    "method": request.method,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
            return response
        finally:
            request_id_var.reset(token)


def private_pages_middleware(get_response):
    """Pages answered to a logged-in user are theirs alone: no browser or shared cache keeps them.

    Views that set Cache-Control themselves (the admin's never_cache, the phone API's feed) keep
    theirs; every other answer to an authenticated request gets ``private, no-store``.
    """

    def middleware(request):
        response = get_response(request)
        # The phone API's request.user is a Device (or None), which is not a logged-in person.
        user = getattr(request, "user", None)
        if getattr(user, "is_authenticated", False) is True and not response.has_header("Cache-Control"):
            response["Cache-Control"] = "private, no-store"
        return response

    return middleware


RETRY_AFTER_SECONDS = 5


def database_unavailable_response(request, exception) -> HttpResponse:
    """503 with ``Retry-After`` for a request that lost its database: JSON on /api/, text elsewhere."""
    _database_logger.warning("database unavailable: %s %s: %s", request.method, request.path, exception)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.path.startswith("/api/"):
        return error_response(
            503,
            "unavailable",
            "The service is briefly unavailable; retry after the seconds in Retry-After.",
            headers=headers,
        )
    response = HttpResponse(
        _("LeaveHome is briefly unavailable. Please try again in a moment."),
        status=503,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = headers["Retry-After"]
    return response


class DatabaseUnavailableMiddleware:
    """A request that lost its database (PostgreSQL restarted or failing over) answers 503.

    Web threads keep their connections (CONN_MAX_AGE) without a check per request, so after a
    restart each thread's first request finds its connection dead. Django drops the broken
    connection when the request ends and the next request opens a new one; this answers the
    failed request with 503 and ``Retry-After`` (the API's JSON error on /api/) instead of a
    500 page. A transaction in progress was rolled back by the server: nothing is half-written.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        return database_unavailable_response(request, exception)


class LeanRoutesMiddleware:
    """Hands the routes named in ``LEAN_ROUTES`` straight to their views, past the middleware below.

    The phone's upload arrives hundreds of times a second at peak and uses no session,
    language, CSRF token, login, messages, static files or lockout; yet each of those
    middleware costs every request tens of microseconds (django-csp rebuilds its header for
    every response, ~80 µs, the language negotiation ~60 µs), a tenth of the upload's own
    CPU together. This sits after the request context and SecurityMiddleware, so these
    routes keep their request id, log line, metric and security headers; what the skipped
    middleware would have added that matters for a JSON answer is set here (a CSP that loads
    nothing, no framing, Content-Length). The view still gets ``request.resolver_match``, and a
    lost database still answers 503 as DatabaseUnavailableMiddleware would.
    """

    CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"

    def __init__(self, get_response):
        self.get_response = get_response
        # URLconf → {path: ResolverMatch}, made on first use (the URLconf is not loaded
        # yet when middleware is); per URLconf, as tests may swap it.
        self._routes: dict[str, dict] = {}

    def _routes_load(self, urlconf: str) -> dict:
        routes = {}
        for name in settings.LEAN_ROUTES:
            try:
                path = reverse(name, urlconf=urlconf)
            except NoReverseMatch:  # a URLconf without that route
                continue
            routes[path] = resolve(path, urlconf=urlconf)
        self._routes[urlconf] = routes
        return routes

    def __call__(self, request):
        urlconf = getattr(request, "urlconf", None) or settings.ROOT_URLCONF
        routes = self._routes.get(urlconf)
        match = (routes if routes is not None else self._routes_load(urlconf)).get(request.path_info)
        if match is None:
            return self.get_response(request)
        request.resolver_match = match
        try:
            response = match.func(request, *match.args, **match.kwargs)
        except (OperationalError, InterfaceError) as exception:
            return database_unavailable_response(request, exception)
        response.headers.setdefault("Content-Security-Policy", self.CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        return response
