"""Celery tasks of the matching core, publication and retention: ids in, one service call each.

Every task is enqueued on commit (notifications/matching.py, notifications/cases.py), is
acknowledged late and re-queued if its worker dies, and is idempotent: the matching
statements write through a unique key, retention deletes what is already gone as a no-op.
Retries are only for errors that may pass (a dropped connection, a deadlock, a lock timeout).
"""

import datetime as dt
import logging
import time
import uuid

from celery import shared_task
from django.db import InterfaceError, OperationalError

from notifications import matching

logger = logging.getLogger(__name__)

# Errors worth retrying: the database went away or a lock was contended. A programming error
# (ProgrammingError, IntegrityError) would fail again, so it is not retried.
_TRANSIENT = (OperationalError, InterfaceError)

_TASK_OPTIONS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": _TRANSIENT,
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 8,
}


@shared_task(name="notifications.match_uploads", **_TASK_OPTIONS)
def match_uploads(device_id: str, dates: list[str]) -> int:
    """Match a device's uploads of ``dates`` (ISO) against live exposures."""
    started = time.monotonic()
    ids = matching.uploads_match(device_id=uuid.UUID(device_id), dates=[dt.date.fromisoformat(d) for d in dates])
    matching.matching_run_record(direction="upload", notifications=len(ids), started=started)
    return len(ids)


@shared_task(name="notifications.match_publication", **_TASK_OPTIONS)
def match_publication(case_id: int, case_visit_ids: list[int], date: str) -> int:
    """Match one chunk of a publication (case visits of one date) against stored visit tokens."""
    started = time.monotonic()
    day = dt.date.fromisoformat(date)
    ids = matching.publication_match(case_visit_ids=case_visit_ids, date=day)
    matching.matching_run_record(
        direction="publication", case_id=case_id, date=day, notifications=len(ids), started=started
    )
    return len(ids)


@shared_task(name="notifications.publish_case", **_TASK_OPTIONS)
def publish_case(case_id: int, actor_id: int | None) -> bool:
    """Publish a case queued by an official (notifications.cases.case_publish_later)."""
    from django.contrib.auth import get_user_model
    from django.core.exceptions import ValidationError

    from notifications.cases import case_publish
    from notifications.models import Case

    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id is not None else None
    try:
        case_publish(case=Case(pk=case_id), actor=actor)
    except ValidationError as error:
        # Already published (a redelivery, a second click) or no longer publishable: the
        # case stays as it is, which the admin shows; retrying would fail the same way.
        logger.warning("case %s not published: %s", case_id, " ".join(error.messages))
        return False
    return True


@shared_task(name="notifications.visit_token_partitions_ahead", **_TASK_OPTIONS)
def visit_token_partitions_ahead() -> list[str]:
    """Create the visit-token partitions of every date an upload may name (beat, hourly)."""
    from django.conf import settings
    from django.utils import timezone

    from notifications.partitions import PARTITIONS_AHEAD, visit_token_partitions_ensure

    today = timezone.localdate()
    dates = [
        today + dt.timedelta(days=offset) for offset in range(-settings.LEAVEHOME_RETENTION_DAYS, PARTITIONS_AHEAD + 1)
    ]
    return [date.isoformat() for date in visit_token_partitions_ensure(dates)]


@shared_task(name="notifications.retention_purge", **_TASK_OPTIONS)
def retention_purge() -> dict:
    """Delete everything older than the retention window (beat, daily)."""
    from notifications.retention import retention_purge as purge

    return purge()
