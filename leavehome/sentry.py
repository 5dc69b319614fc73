"""Error tracking with Sentry: off unless SENTRY_DSN is set, and nothing personal in a report.

Started from settings (web, workers, beat, manage.py alike) with the Django and Celery
integrations. ``send_default_pii=False`` keeps users, cookies and client addresses out;
local variables are not sent (a frame of the upload view holds tokens); and every event
passes :func:`event_scrub` before it leaves, which keeps only harmless request headers,
drops bodies, cookies and the WSGI environment, and scrubs every remaining string of
addresses and secret-looking runs (leavehome/scrub.py). Each event is tagged with the
request id its log lines carry.
"""

from leavehome.logs import request_id_var
from leavehome.scrub import scrub_data, scrub_text

# Request headers worth having in a report; everything else (Authorization, Cookie,
# X-Forwarded-For, X-Real-IP, User-Agent...) is dropped.
KEPT_HEADERS = frozenset({"accept", "accept-language", "content-length", "content-type", "host", "x-request-id"})
_SCRUBBED_PARTS = ("exception", "threads", "message", "logentry", "breadcrumbs", "extra", "contexts", "tags")


def event_scrub(event: dict, hint: dict | None = None) -> dict:
    """Sentry's ``before_send``: the event without personal data or secrets."""
    event.pop("user", None)
    request = event.get("request")
    if isinstance(request, dict):
        for part in ("cookies", "data", "env"):
            request.pop(part, None)
        headers = request.get("headers") or {}
        request["headers"] = {
            name: scrub_text(str(value)) for name, value in headers.items() if name.lower() in KEPT_HEADERS
        }
        for part in ("url", "query_string"):
            if isinstance(request.get(part), str):
                request[part] = scrub_text(request[part])
    for part in _SCRUBBED_PARTS:
        if part in event:
            event[part] = scrub_data(event[part])
    request_id = request_id_var.get()
    if request_id:
        event["tags"] = {**(event.get("tags") or {}), "request_id": request_id}
    return event


def sentry_init(*, dsn: str, environment: str, traces_sample_rate: float, transport=None) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        traces_sample_rate=traces_sample_rate,
        before_send=event_scrub,
        before_send_transaction=event_scrub,
        transport=transport,
    )
