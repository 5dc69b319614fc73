"""The public exposure list as a page, JSON and CSV (notifications/public.py says what it holds).

JSON and CSV are the same for everyone: shared caches may keep them for a few minutes and
revalidate with their ETag (304 when unchanged). The page carries the language switch's CSRF
token, so it is not for shared caches.
"""

from functools import wraps

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.decorators.http import require_GET

from leavehome.lib.conditional import etag_matches, json_etag
from leavehome.ratelimit import Limit, client_address, rate_limits_hit
from notifications.public import district_names, public_exposures, public_exposures_csv, public_exposures_document

# Matches how often an official's publication should reach the public (minutes, not hours).
PUBLIC_MAX_AGE_SECONDS = 300


def _throttled(view):
    """Answer 429 with Retry-After past ``public_list_ip`` requests per address: each answer is a query."""

    @wraps(view)
    def throttled(request):
        rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["public_list_ip"]
        wait = rate_limits_hit([Limit("public_list_ip", client_address(request.META), rate)])
        if wait is not None:
            response = HttpResponse("Too many requests.", status=429, content_type="text/plain; charset=utf-8")
            response["Retry-After"] = str(wait)
            return response
        return view(request)

    return throttled


def _district(request) -> str:
    district = request.GET.get("district", "")
    return district if district in {slug for slug, _, _ in district_names()} else ""


def _cacheable(request, response, etag: str):
    """The answer (or 304 if the client holds it) with its ETag and the public cache headers."""
    if etag_matches(request, etag):
        response = HttpResponse(status=304)
    response["ETag"] = etag
    patch_cache_control(response, public=True, max_age=PUBLIC_MAX_AGE_SECONDS)
    return response


@require_GET
@_throttled
def exposures_page(request):
    district = _district(request)
    context = {
        "entries": public_exposures(district=district),
        "districts": district_names(),
        "district": district,
        "days": settings.PUBLIC_EXPOSURE_LIST_DAYS,
    }
    response = render(request, "notifications/exposures.html", context)
    patch_vary_headers(response, ["Accept-Language", "Cookie"])
    return response


@require_GET
@_throttled
def exposures_json(request):
    document = public_exposures_document(public_exposures(district=_district(request)))
    response = JsonResponse(document, json_dumps_params={"ensure_ascii": False})
    return _cacheable(request, response, json_etag(document))


@require_GET
@_throttled
def exposures_csv(request):
    entries = public_exposures(district=_district(request))
    response = HttpResponse(public_exposures_csv(entries), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="exposures.csv"'
    # The same entries make the same CSV: its tag is the JSON document's, marked as CSV.
    return _cacheable(request, response, json_etag({"csv": public_exposures_document(entries)}))
