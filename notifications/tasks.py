"""Celery tasks of the matching core, publication and retention: ids in, one service call each.

Every task is enqueued on commit (notifications/cases.py) or by beat (the sweeps), is
acknowledged late and re-queued if its worker dies, and is idempotent: the matching
statements write through a unique key and the sweeps delete the backlog rows they matched in
the same transaction, retention deletes what is already gone as a no-op.
Retries are only for errors that may pass (a dropped connection, a deadlock, a lock timeout).

Work whose loss would cost a notification (a publication, its matching chunks) is first
written to PostgreSQL in the transaction that calls for it; the task queued on commit only
makes it start at once. If the broker cannot take that task, ``_send_on_commit`` logs it and
the publication sweep beat ticks (``publications_sweep``) finds the work once the broker is
back.
"""

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass
from functools import partial

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, transaction
from kombu.exceptions import OperationalError as BrokerUnreachable

from notifications import matching, partitions
from notifications.cases import (
    case_approve,
    case_publish,
    case_publish_request,
    case_publish_request_drop,
    case_publish_requested,
)
from notifications.models import Case
from notifications.push.tasks import push_later
from notifications.retention import retention_purge as purge
from notifications.safety import kill_switch_is_on, kill_switch_set, task_deferred_if_paused

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


@shared_task(name="notifications.uploads_sweep", ignore_result=True, **_TASK_OPTIONS)
def uploads_sweep() -> int:
    """Match the upload backlog against live exposures, batch after batch; returns the uploads matched.

    Beat queues it every UPLOAD_SWEEP_INTERVAL seconds (``expires`` drops ticks a busy
    worker could not take in time). It stops when the backlog is empty, or after
    UPLOAD_SWEEP_SECONDS with work left, queueing itself again so a long backlog neither
    holds one worker process indefinitely nor waits for the next tick. Several sweeps at once
    share the backlog (each batch claims disjoint rows), so more workers catch up faster.
    """
    if kill_switch_is_on():
        return 0  # the backlog keeps the uploads; turning the switch off sweeps them
    deadline = time.monotonic() + settings.UPLOAD_SWEEP_SECONDS
    total = 0
    while True:
        started = time.monotonic()
        batch = matching.uploads_sweep_batch(limit=settings.UPLOAD_SWEEP_BATCH)
        total += batch.uploads
        if batch.notification_ids:
            push_later(notification_ids=batch.notification_ids)
            matching.matching_run_record(direction="upload", notifications=len(batch.notification_ids), started=started)
        if batch.uploads < settings.UPLOAD_SWEEP_BATCH:
            return total
        if time.monotonic() >= deadline:
            uploads_sweep.delay()
            return total


def uploads_match_soon() -> None:
    """Have the upload backlog swept soon; called by the upload endpoint after ingest.

    With a broker, beat sweeps every second: nothing is queued, so an upload neither waits
    for the broker nor fails without it. In-process (the embedded default: no broker, no
    beat), the sweep runs once the upload's transaction commits.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        transaction.on_commit(uploads_sweep.delay)


@shared_task(name="notifications.match_uploads", **_TASK_OPTIONS)
def match_uploads(device_id: str, dates: list[str]) -> int:
    """Put a device's dates in the upload backlog: messages queued before uploads were swept.

    Releases before the sweep queued one of these per upload; a message still in the broker
    after an upgrade becomes backlog rows, so its upload is matched like any other.
    """
    with transaction.atomic():
        matching.uploads_backlog_add(
            device_id=uuid.UUID(device_id), dates=[dt.date.fromisoformat(date) for date in dates]
        )
        uploads_match_soon()
    return 0


@dataclass
class Queued:
    """Whether work queued on commit reached the broker: None until the transaction commits."""

    sent: bool | None = None


def _send_on_commit(task, *args, queued: Queued | None = None) -> None:
    """Send ``task(*args)`` once the current transaction commits; a broker outage is logged, not raised.

    Only for work already recorded in PostgreSQL by that transaction, which the publication
    sweep finds without the message: raising here would turn a committed publication into an
    error page (the web request) or a failed task with nothing to retry (the worker).
    """

    def send():
        try:
            task.apply_async(args)
        except BrokerUnreachable as error:
            logger.warning("%s not queued, the broker is unreachable (%s): beat's sweep takes it", task.name, error)
            sent = False
        else:
            sent = True
        if queued is not None:
            queued.sent = sent

    transaction.on_commit(send)


@shared_task(name="notifications.publications_sweep", ignore_result=True, **_TASK_OPTIONS)
def publications_sweep() -> int:
    """Publish the requested cases no worker took, then match the publication backlog chunk by chunk.

    Queued once per chunk when a publication commits (``publication_match_later``), so the
    chunks of a big publication run on several worker processes at once, and by beat every
    PUBLICATION_SWEEP_INTERVAL seconds, which finds what a broker outage kept from being
    queued. Each call takes chunks until none is left unclaimed, or until
    UPLOAD_SWEEP_SECONDS have passed, queueing itself again then. Returns the chunks matched.
    """
    deadline = time.monotonic() + settings.UPLOAD_SWEEP_SECONDS
    grace = dt.timedelta(seconds=settings.PUBLISH_REQUEST_GRACE_SECONDS)
    total = 0
    while True:
        if kill_switch_is_on():
            return total  # the backlog and the requests wait; turning the switch off sweeps them
        publication = case_publish_requested(older_than=grace)
        if publication is not None:
            publication_match_later(chunks=publication.chunks)  # its other chunks on other processes
        elif _publication_chunk_match() is None:
            return total
        else:
            total += 1
        if time.monotonic() >= deadline:
            publications_sweep.delay()
            return total


def _publication_chunk_match() -> matching.PublicationChunk | None:
    """One chunk matched (its run recorded in its transaction), its pushes queued; None when none is left."""
    chunk = matching.publications_sweep_batch()
    if chunk is not None:
        push_later(notification_ids=chunk.notification_ids)
    return chunk


@shared_task(name="notifications.match_publication", **_TASK_OPTIONS)
def match_publication(case_id: int, case_visit_ids: list[int], date: str) -> int:
    """Match one chunk of a publication (case visits of one date) against stored visit tokens.

    Releases before the publication backlog queued one of these per chunk; a message still
    in the broker after an upgrade (or parked by the kill switch) is matched as it was.
    """
    if task_deferred_if_paused("notifications.match_publication", [case_id, case_visit_ids, date]):
        return 0
    started = time.monotonic()
    day = dt.date.fromisoformat(date)
    ids = matching.publication_match(case_visit_ids=case_visit_ids, date=day)
    push_later(notification_ids=ids)
    matching.matching_run_record(
        direction="publication", case_id=case_id, date=day, notifications=len(ids), started=started
    )
    return len(ids)


@shared_task(name="notifications.publish_case", **_TASK_OPTIONS)
def publish_case(case_id: int, actor_id: int | None) -> bool:
    """Publish a case queued by an official (``case_publish_later``), then queue its matching."""
    if task_deferred_if_paused("notifications.publish_case", [case_id, actor_id]):
        return False
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id is not None else None
    try:
        case_publish_and_match(case=Case(pk=case_id), actor=actor)
    except ValidationError as error:
        # Already published (a redelivery, a second click, the sweep was first) or no longer
        # publishable: the case stays as it is, which the admin shows; retrying would fail
        # the same way, and so would the sweep, so the request is dropped.
        case_publish_request_drop(case_id=case_id, reason=" ".join(error.messages))
        logger.warning("case %s not published: %s", case_id, " ".join(error.messages))
        return False
    return True


def case_publish_later(*, case: Case, actor) -> Queued:
    """Record an official's request to publish (``case_publish_request``) and have a worker publish it on commit.

    Building exposures opens venue keys, which only the workers holding TRACING_KEY can do
    (docs/privacy.md); the web process serving the admin only checks, records and queues.
    Raises the errors case_publish would, so the official sees them at once. The returned
    ``Queued`` says, once this commits, whether the broker took the task: if not, the request
    stays on the case and the publication sweep publishes it when the broker is back.
    """
    queued = Queued()
    with transaction.atomic():
        case = case_publish_request(case=case, actor=actor)
        _send_on_commit(publish_case, case.pk, getattr(actor, "pk", None), queued=queued)
    return queued


def case_approve_later(*, case: Case, actor) -> Queued:
    """A second official's approval (``case_approve``), and the publication queued on its commit.

    Raises CaseStateError as case_approve does; nothing is queued then. As for
    ``case_publish_later``, a broker outage leaves the approved case to the publication sweep.
    """
    queued = Queued()
    with transaction.atomic():
        case = case_approve(case=case, actor=actor)
        _send_on_commit(publish_case, case.pk, getattr(actor, "pk", None), queued=queued)
    return queued


def kill_switch_turn(*, active: bool, actor, reason: str = ""):
    """Turn the kill switch on or off (``kill_switch_set``); off queues what it parked, and the sweeps.

    ``apply_async`` rather than ``send_task``: in-process (eager) execution honours it too.
    Uploads stored and chunks published while it was on wait in their backlogs: the sweeps
    take them now rather than at the next beat tick.
    """
    from leavehome.celery import app

    with transaction.atomic():
        switch, parked = kill_switch_set(active=active, actor=actor, reason=reason)
        for name, args in parked:
            transaction.on_commit(partial(app.tasks[name].apply_async, args=args))
        if not active:
            transaction.on_commit(uploads_sweep.delay)
            transaction.on_commit(publications_sweep.delay)
    return switch


def case_publish_and_match(*, case: Case, actor) -> Case:
    """Publish a case here and now and queue its matching on commit (the task's body; tests and demo data)."""
    publication = case_publish(case=case, actor=actor)
    publication_match_later(chunks=publication.chunks)
    return publication.case


def publication_match_later(*, chunks: dict[dt.date, list[int]]) -> None:
    """Queue one publication sweep per chunk the publication wrote to the backlog, once it commits.

    Each sweep claims a chunk of its own (SKIP LOCKED), so the chunks run in parallel on as
    many worker processes as there are, with no wait for beat; a sweep the broker did not
    take is made up for by beat's next tick.
    """
    for _chunk in matching.publication_chunks(chunks):
        _send_on_commit(publications_sweep)


@shared_task(name="notifications.visit_token_partitions_ahead", **_TASK_OPTIONS)
def visit_token_partitions_ahead() -> list[str]:
    """Create the visit-token partitions of every date an upload may name (beat, hourly)."""
    return [date.isoformat() for date in partitions.visit_token_partitions_ahead()]


@shared_task(name="notifications.visit_token_partitions_analyze", **_TASK_OPTIONS)
def visit_token_partitions_analyze() -> list[str]:
    """Refresh the planner statistics of the partitions uploads filled since (beat, every minute)."""
    return partitions.visit_token_partitions_analyze()


@shared_task(name="notifications.retention_purge", **_TASK_OPTIONS)
def retention_purge() -> dict:
    """Delete everything older than the retention window (beat, daily)."""
    return purge()
