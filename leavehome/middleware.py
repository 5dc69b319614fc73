"""What every request passes through first: its request id, its log line, its metric.

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

from leavehome.logs import request_id_var
from leavehome.metrics import http_request_observe

logger = logging.getLogger("leavehome.request")

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
