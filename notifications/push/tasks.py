"""Celery tasks of push delivery: ids in, one service call, and the retry scheduled on the way out.

Also where push work is queued from elsewhere (``push_later``): the matching tasks call it.
"""

import logging
from functools import partial

from celery import shared_task
from django.db import transaction

from notifications.push.delivery import push_batches, push_deliver_batch, push_deliveries_reap
from notifications.safety import kill_switch_is_on, task_deferred_if_paused

logger = logging.getLogger(__name__)

# One second past the due time, so a retry never arrives before its rows may be claimed.
_DUE_MARGIN_SECONDS = 1.0


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def push_deliver(notification_ids):
    """Push the devices of these notifications (one batch); safe to redeliver or duplicate."""
    if task_deferred_if_paused("notifications.push.tasks.push_deliver", [notification_ids]):
        return None
    report = push_deliver_batch(notification_ids=notification_ids)
    logger.info(
        "push batch: %d delivered, %d retrying, %d failed, %d disabled",
        report.delivered,
        report.retrying,
        report.failed,
        report.disabled,
    )
    if report.retry_ids:
        # Executed at once when tasks run in-process (eager): the rows are not due yet then,
        # so that run claims nothing, and the reaper sends them when they are.
        push_deliver.apply_async((report.retry_ids,), countdown=report.retry_delay + _DUE_MARGIN_SECONDS)
    return None


@shared_task(acks_late=True, ignore_result=True)
def push_reap():
    """Re-enqueue overdue deliveries (a worker died mid-send, or a scheduled retry was lost)."""
    if kill_switch_is_on():
        return  # parked deliveries run when it is off; re-queueing them each minute would pile up
    for batch in push_deliveries_reap():
        push_deliver.delay(batch)


def push_later(*, notification_ids) -> None:
    """Push the devices of these new or upgraded notifications once the current transaction commits.

    Outside a transaction (a matching task, after its statement committed) the tasks are
    queued at once.
    """
    for batch in push_batches(notification_ids=notification_ids):
        transaction.on_commit(partial(push_deliver.delay, batch))


@shared_task(ignore_result=True)
def push_canary():
    """Send the canary pushes (beat, every PUSH_CANARY_SECONDS); outcomes become metrics."""
    from notifications.push.canary import push_canary_send

    push_canary_send()
