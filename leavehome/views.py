"""Project-wide pages: the home page and the health check."""

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.generic import TemplateView

from leavehome import metrics
from leavehome.celery import app as celery_app

logger = logging.getLogger(__name__)


class HomeView(TemplateView):
    template_name = "home.html"


def _database_problem():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # any failure means "not healthy"; the reason is reported
        return f"{type(error).__name__}: {error}"
    return None


def _broker_problem():
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None  # embedded default: tasks run in-process, there is no broker to reach
    try:
        with celery_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def _liveness():
    """The ages that show whether beat and the workers keep up, and what is wrong with them."""
    from leavehome import monitoring

    _, backlog_age = monitoring.upload_backlog()
    ages = {"upload_backlog_age_seconds": backlog_age}
    problems = {}
    limit = settings.HEALTHZ_BACKLOG_MAX_AGE_SECONDS
    if limit and backlog_age is not None and backlog_age > limit:
        problems["upload_backlog"] = f"the oldest upload has waited {backlog_age:.0f} s to be matched (limit {limit} s)"
    _, publication_age = monitoring.publication_backlog()
    ages["publication_backlog_age_seconds"] = publication_age
    limit = settings.HEALTHZ_PUBLICATION_BACKLOG_MAX_AGE_SECONDS
    if limit and publication_age is not None and publication_age > limit:
        problems["publication_backlog"] = (
            f"the oldest publication has waited {publication_age:.0f} s for a worker (limit {limit} s)"
        )
    if not settings.CELERY_TASK_ALWAYS_EAGER:  # the embedded default has no beat
        beat_age = monitoring.seconds_since(monitoring.beat_last_tick())
        ages["beat_tick_age_seconds"] = beat_age
        limit = settings.HEALTHZ_BEAT_MAX_AGE_SECONDS
        if limit and beat_age is None:
            problems["beat"] = "no heartbeat recorded yet: is beat running, and a worker?"
        elif limit and beat_age > limit:
            problems["beat"] = f"the last heartbeat is {beat_age:.0f} s old (limit {limit} s): beat or workers stopped"
    return ages, problems


@never_cache
def healthz(request):
    """200 when the database and the broker answer and beat and the workers keep up; 503 otherwise.

    The body names each failing part and its error, and gives the age of beat's last tick, of
    the oldest upload waiting to be matched and of the oldest publication waiting for a worker
    (a chunk to match or a request to publish) (None: none recorded, or none waiting).
    """
    problems = {
        name: problem for name, problem in (("database", _database_problem()), ("broker", _broker_problem())) if problem
    }
    ages = {}
    if "database" not in problems:
        ages, liveness_problems = _liveness()
        problems.update(liveness_problems)
    if problems:
        logger.warning("health check failed: %s", problems)
        return JsonResponse({"status": "unavailable", "problems": problems, **ages}, status=503)
    broker = "in-process" if settings.CELERY_TASK_ALWAYS_EAGER else "ok"
    return JsonResponse({"status": "ok", "database": "ok", "broker": broker, **ages})


@never_cache
def metrics_view(request):
    """Prometheus exposition of the web tier (all gunicorn workers) and the system's state.

    Off (404) without METRICS_TOKEN; 401 without the token. Scraped on the private network,
    past nginx (which refuses /metrics from outside).
    """
    if not settings.METRICS_TOKEN:
        return HttpResponse("metrics are off (METRICS_TOKEN is not set)\n", status=404, content_type="text/plain")
    if not metrics.token_matches(request.headers.get("Authorization"), settings.METRICS_TOKEN):
        response = HttpResponse("a metrics token is required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = "Bearer"
        return response
    body, content_type = metrics.scrape(with_state=True)
    return HttpResponse(body, content_type=content_type)
