"""Prometheus metrics: what the processes count, and the endpoint that exposes them.

Counters and histograms are incremented where things happen (requests in leavehome/
middleware.py, tasks by Celery's signals in leavehome/celery.py, pushes in notifications/
push/delivery.py, uploads in the upload view) and cost a few microseconds each. Under
gunicorn and Celery's prefork pool every process writes its own files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, which must be set in the
environment before the process starts); a scrape adds them up. The web tier and the workers
each have their own directory and their own endpoint: ``GET /metrics`` on gunicorn, and a
small server in each worker's main process (``METRICS_WORKER_PORT``). Both require
``Authorization: Bearer METRICS_TOKEN``; without a token they are off.

The state of the system (the upload and publication backlogs and their ages, stored
notifications by risk, the last retention run and beat tick, queue depths) is read at scrape time by
:class:`StateCollector`, from the web endpoint only, so it is counted once per scrape target.

Metric names and labels are documented in docs/operations.md; deploy/prometheus/ has the
scrape configuration, alert rules and a Grafana dashboard built on them.
"""

import hmac
import logging
import os
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from leavehome.metrics_files import MULTIPROCESS_DIR_VARIABLE

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Histogram(
    "leavehome_http_request_duration_seconds",
    "Requests served, by route pattern, method and status, and how long they took.",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
UPLOADS = Counter("leavehome_uploads", "Visit uploads accepted (POST /api/v1/visits).")
UPLOAD_TOKENS = Counter("leavehome_upload_tokens", "Visit tokens in accepted uploads.")
TASKS = Histogram(
    "leavehome_task_duration_seconds",
    "Celery tasks run, by task and final state, and how long they took "
    "(publication matching: task=notifications.publications_sweep).",
    ["task", "state"],
    buckets=_TASK_BUCKETS,
)
PUSHES = Counter(
    "leavehome_push_sends",
    "Push attempts by provider (webpush, fcm, apns) and outcome (delivered, retrying, failed, disabled).",
    ["provider", "status"],
)
CANARY = Counter(
    "leavehome_push_canary",
    "Canary pushes to operators' own devices, by provider and outcome.",
    ["provider", "status"],
)


def upload_count(*, tokens: int) -> None:
    """One accepted upload and its newly stored tokens (two in-memory increments)."""
    UPLOADS.inc()
    UPLOAD_TOKENS.inc(tokens)


def http_request_observe(*, route: str, method: str, status: int, seconds: float) -> None:
    method = method if method in _KNOWN_METHODS else "other"
    HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).observe(seconds)


class StateCollector:
    """Gauges read at scrape time from the database and the broker (leavehome/monitoring.py)."""

    def collect(self):
        from leavehome import monitoring

        rows, age = monitoring.upload_backlog()
        yield GaugeMetricFamily("leavehome_upload_backlog_rows", "Uploaded dates not matched yet.", value=rows)
        yield GaugeMetricFamily(
            "leavehome_upload_backlog_age_seconds",
            "Age of the oldest upload not matched yet (0 when none waits).",
            value=age or 0.0,
        )
        rows, age = monitoring.publication_backlog()
        yield GaugeMetricFamily(
            "leavehome_publication_backlog_rows",
            "Publication chunks not matched yet and requests to publish no worker took.",
            value=rows,
        )
        yield GaugeMetricFamily(
            "leavehome_publication_backlog_age_seconds",
            "Age of the oldest publication chunk or request waiting for a worker (0 when none waits).",
            value=age or 0.0,
        )
        by_risk = GaugeMetricFamily("leavehome_notifications", "Stored notifications by risk.", labels=["risk"])
        for risk, total in sorted(monitoring.notifications_by_risk().items()):
            by_risk.add_metric([risk], total)
        yield by_risk
        for name, help_text, moment in (
            ("leavehome_retention_last_run_timestamp_seconds", "Last retention run.", monitoring.retention_last_run()),
            ("leavehome_beat_last_tick_timestamp_seconds", "Beat's last heartbeat.", monitoring.beat_last_tick()),
        ):
            if moment is not None:
                yield GaugeMetricFamily(name, help_text, value=moment.timestamp())
        queues = GaugeMetricFamily("leavehome_queue_messages", "Messages waiting in a Celery queue.", labels=["queue"])
        for queue, depth in sorted(monitoring.queue_depths().items()):
            queues.add_metric([queue], depth)
        yield queues


def registry_for_scrape(*, with_state: bool) -> CollectorRegistry:
    """This process's metrics, or in multiprocess mode those of every process of its directory."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    if with_state:
        registry.register(StateCollector())
    return registry


class _ThisProcess:
    """The default registry, when a process is scraped alone (runserver, the embedded default)."""

    def collect(self):
        from prometheus_client import REGISTRY

        return REGISTRY.collect()


def token_matches(authorization: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries the metrics token (constant-time)."""
    if not token or not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[len("Bearer ") :].encode(), token.encode())


def scrape(*, with_state: bool) -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(registry_for_scrape(with_state=with_state)), CONTENT_TYPE_LATEST


def worker_server_start(*, bind: str, port: int, token: str) -> None:
    """Serve the worker's metrics on ``bind:port`` from a thread of the worker's main process."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format, *args):
            pass  # no access line with the scraper's address; Prometheus records its scrapes

    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if not token_matches(environ.get("HTTP_AUTHORIZATION"), token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"a metrics token is required\n"]
        body, content_type = scrape(with_state=False)
        start_response("200 OK", [("Content-Type", content_type)])
        return [body]

    server = make_server(bind, port, app, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    logger.info("worker metrics served on port %s", port)
