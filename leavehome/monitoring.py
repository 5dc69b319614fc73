"""Reads for operators: how far behind the workers are, when things last ran, queue depths.

Shared by ``/healthz`` (leavehome/views.py) and the metrics endpoint (leavehome/metrics.py).
Each read is one cheap statement on an index or a tiny table, because a load balancer and
Prometheus call these every few seconds.
"""

import datetime as dt
import logging

from django.conf import settings
from django.db.models import Count, Max, Min
from django.utils import timezone

logger = logging.getLogger(__name__)


def upload_backlog() -> tuple[int, float | None]:
    """Rows in the upload-matching backlog and the age in seconds of the oldest (None when empty).

    The backlog is drained within seconds when the sweep keeps up, so the table is small and
    the count is cheap; the age is how long a phone's upload has waited to be matched.
    """
    from notifications.models import UploadBacklog

    summary = UploadBacklog.objects.aggregate(rows=Count("id"), oldest=Min("created_at"))
    return summary["rows"], seconds_since(summary["oldest"])


def publication_backlog() -> tuple[int, float | None]:
    """Publication work waiting for a worker, and the age in seconds of the oldest (None when none).

    Counts the chunks not yet matched and the cases an official asked to publish (or
    approved) that no worker has published yet: both are empty within seconds of a
    publication unless the broker, beat or the workers are down. Two small reads: the
    backlog is a few rows, the requests a partial index of the few waiting cases.
    """
    from notifications.models import Case, PublicationBacklog

    chunks = PublicationBacklog.objects.aggregate(rows=Count("id"), oldest=Min("created_at"))
    requests = Case.objects.filter(publish_requested_at__isnull=False).aggregate(
        rows=Count("id"), oldest=Min("publish_requested_at")
    )
    oldest = min((moment for moment in (chunks["oldest"], requests["oldest"]) if moment is not None), default=None)
    return chunks["rows"] + requests["rows"], seconds_since(oldest)


def retention_last_run() -> dt.datetime | None:
    """When the retention purge last finished (its audit entry; index on action)."""
    from leavehome.models import AuditEntry

    return AuditEntry.objects.filter(action="retention.purge").aggregate(last=Max("created_at"))["last"]


def beat_last_tick() -> dt.datetime | None:
    """When beat's heartbeat was last recorded by a worker (leavehome.tasks.heartbeat)."""
    from leavehome.heartbeats import BEAT
    from leavehome.models import Heartbeat

    return Heartbeat.objects.filter(name=BEAT).values_list("at", flat=True).first()


def seconds_since(moment: dt.datetime | None) -> float | None:
    return None if moment is None else max(0.0, (timezone.now() - moment).total_seconds())


def notifications_by_risk() -> dict[str, int]:
    """Stored notifications per risk (the dashboard's figure)."""
    from notifications.models import Notification

    return {row["risk"]: row["total"] for row in Notification.objects.values("risk").annotate(total=Count("id"))}


def queue_depths() -> dict[str, int]:
    """Messages waiting in each queue the workers consume, from the broker (empty when eager)."""
    # The project's app (leavehome/celery.py), through Celery's current app: importing the
    # module would tie it, its signal handlers and the metrics into a cycle.
    from celery import current_app as app

    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {}
    depths = {}
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            channel = connection.default_channel
            for queue in settings.METRICS_QUEUES:
                try:
                    depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:  # a queue nobody declared yet holds nothing
                    depths[queue] = 0
                    channel = connection.channel()
    except Exception as error:  # an unreachable broker is /healthz's to report, not the scrape's
        logger.warning("queue depths unavailable: %s", type(error).__name__)
    return depths
