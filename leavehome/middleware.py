"""Project-wide middleware."""

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.utils.translation import gettext as _

from leavehome.api import error_response

logger = logging.getLogger(__name__)


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


class DatabaseUnavailableMiddleware:
    """A request that lost its database (PostgreSQL restarted or failing over) answers 503.

    Web threads keep their connections (CONN_MAX_AGE) without a check per request, so after a
    restart each thread's first request finds its connection dead. Django drops the broken
    connection when the request ends and the next request opens a new one; this answers the
    failed request with 503 and ``Retry-After`` (the API's JSON error on /api/) instead of a
    500 page. A transaction in progress was rolled back by the server: nothing is half-written.
    """

    RETRY_AFTER_SECONDS = 5

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        logger.warning("database unavailable: %s %s: %s", request.method, request.path, exception)
        headers = {"Retry-After": str(self.RETRY_AFTER_SECONDS)}
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
