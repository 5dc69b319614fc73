"""Push delivery: from new notifications to one wake-up per device, exactly once, with retries.

Flow. Matching creates or upgrades notifications; the matching task hands their ids to
``push_later`` (notifications/push/tasks.py), which on commit enqueues one ``push_deliver``
task per batch of up to PUSH_BATCH_DEVICES devices that have an active channel
(:func:`push_batches`; a device without one polls). A task:

1. records one PushDelivery per (notification, channel, risk), ``ON CONFLICT DO NOTHING``;
2. claims the unfinished, due rows among them with one conditional UPDATE that stamps a
   fresh claim id: a duplicated or redelivered task finds them delivered or claimed by the
   other and sends nothing, so no phone is woken twice for the same notification;
3. sends one push per channel (a device with three new notifications is woken once), from a
   small thread pool over one keep-alive HTTP client per kind;
4. records each outcome with one UPDATE per kind of outcome: delivered; retrying (due again
   after exponential backoff with jitter, never before the service's Retry-After); failed
   (permanent, or out of attempts; a dead address also deactivates the channel); disabled
   (no credentials for that kind). Each outcome is counted by provider and status in the
   ``leavehome_push_sends`` metric, which the push-failure alert watches.

Whatever happens to a push, the notification itself stays in ``GET /api/v1/notifications``:
push only shortens the time until the phone looks.

A claimed row is leased for PUSH_CLAIM_SECONDS. If its worker dies mid-send, the reaper
(:func:`push_deliveries_reap`, every minute) re-enqueues it once the lease is over, as it
does for retries whose scheduled task was lost. So a push may be sent twice only when a
worker dies between sending and recording, never because a task was redelivered.
"""

import logging
import random
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from leavehome.metrics import PUSHES
from notifications.models import Notification, PushChannel, PushDelivery
from notifications.push.sealing import address_open
from notifications.push.transports import TRANSPORTS, TransportDisabled, TransportError

logger = logging.getLogger(__name__)

UNFINISHED = [PushDelivery.Status.PENDING, PushDelivery.Status.SENDING, PushDelivery.Status.RETRYING]
# Bounds the size of one ``IN (…)`` list, well under SQLite's limit on bound parameters.
ID_CHUNK = 5000
REAP_LIMIT = 20000
# What an app is told in a Web Push (encrypted): which notifications to fetch, and where.
POLL_PATH = "/api/v1/notifications"
MESSAGE_TYPE_NOTIFICATIONS = "lhs1.notifications"
MESSAGE_TYPE_TEST = "lhs1.test"
# Push services take payloads up to 4 KB; beyond this many ids the app polls for the rest.
MAX_IDS_PER_PUSH = 100

_disabled_logged = set()


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _device_batches(rows):
    """``(device_id, notification_id)`` rows → lists of notification ids, PUSH_BATCH_DEVICES devices each."""
    by_device = defaultdict(list)
    for device_id, notification_id in rows:
        by_device[device_id].append(notification_id)
    devices = sorted(by_device, key=str)
    for batch in _chunks(devices, settings.PUSH_BATCH_DEVICES):
        yield sorted(notification_id for device_id in batch for notification_id in by_device[device_id])


def push_batches(*, notification_ids) -> list[list[int]]:
    """The notifications to push, as delivery batches: only devices with an active channel.

    All the notifications of one device go into the same batch, so it is woken once;
    notifications/push/tasks.py queues one ``push_deliver`` task per batch.
    """
    ids = sorted(set(notification_ids))
    rows = []
    for chunk in _chunks(ids, ID_CHUNK):
        rows.extend(
            Notification.objects.filter(id__in=chunk, device__push_channel__active=True).values_list("device_id", "id")
        )
    return list(_device_batches(rows))


@dataclass
class BatchReport:
    """What one delivery task did, by outcome; ``retry_ids``/``retry_delay`` tell it when to run again."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    disabled: int = 0
    retry_ids: list = field(default_factory=list)
    retry_delay: float = 0.0


def retry_delay_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with "equal jitter" (half fixed, half random), never below Retry-After.

    The jitter spreads the retries of a batch that failed together (a push service's outage)
    so they do not all come back in the same second.
    """
    ceiling = min(settings.PUSH_RETRY_MAX_SECONDS, settings.PUSH_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 (jitter, not a secret)
    return max(delay, retry_after or 0.0)


def _transport_make(kind):
    """The transport of that kind, or the TransportDisabled saying why there is none (logged once per process)."""
    try:
        return TRANSPORTS[kind]()
    except TransportDisabled as error:
        if kind not in _disabled_logged:
            _disabled_logged.add(kind)
            logger.warning("Push over %s is disabled: %s. Its devices will poll instead.", kind, error)
        return error


def _deliveries_record(notification_ids, now):
    rows = Notification.objects.filter(
        id__in=notification_ids, status=Notification.Status.ACTIVE, device__push_channel__active=True
    ).values_list("id", "risk", "device__push_channel__id")
    PushDelivery.objects.bulk_create(
        [
            PushDelivery(notification_id=notification_id, channel_id=channel_id, risk=risk, due_at=now)
            for notification_id, risk, channel_id in rows
        ],
        ignore_conflicts=True,
    )


def _deliveries_claim(notification_ids, now, claim):
    """Claim the due, unfinished deliveries of these notifications: the one conditional write that
    makes a duplicated task harmless (two claims cannot both match a row).

    The conditions stay on the updated table itself (no join, which Django would turn into
    ``id IN (subquery)``): PostgreSQL then re-checks ``status`` and ``due_at`` on a row another
    transaction has just claimed, and skips it, instead of trusting a subquery's old snapshot.
    """
    PushDelivery.objects.filter(notification_id__in=notification_ids, status__in=UNFINISHED, due_at__lte=now).update(
        status=PushDelivery.Status.SENDING,
        claim=claim,
        due_at=now + timedelta(seconds=settings.PUSH_CLAIM_SECONDS),
        attempts=F("attempts") + 1,
        updated_at=now,
    )


def _send_one(transport, channel, message):
    """Send through ``transport``; the error, or None when delivered. Runs in a pool thread: no database."""
    try:
        address = address_open(device_id=channel["device_id"], kind=channel["kind"], sealed=channel["address_sealed"])
        transport.send(address, message)
    except TransportError as error:
        return error
    except Exception as error:  # a bug or an unreadable seal must fail this push only, not the batch
        logger.exception("Push to channel %s failed unexpectedly", channel["id"])
        return TransportError(f"internal error ({type(error).__name__})", permanent=True)
    return None


def _pushes_send(channels, messages):
    """Send ``messages[channel_id]`` to each channel; {channel_id: None | TransportError | TransportDisabled}."""
    transports = {kind: _transport_make(kind) for kind in {channel["kind"] for channel in channels}}
    results = {}
    jobs = []
    try:
        with ThreadPoolExecutor(max_workers=settings.PUSH_CONCURRENCY) as pool:
            for channel in channels:
                transport = transports[channel["kind"]]
                if not channel["active"]:
                    # Deactivated after its deliveries were recorded (another batch found it dead).
                    results[channel["id"]] = TransportError("channel deactivated", permanent=True)
                elif isinstance(transport, TransportDisabled):
                    results[channel["id"]] = transport
                else:
                    jobs.append((channel["id"], pool.submit(_send_one, transport, channel, messages[channel["id"]])))
            for channel_id, job in jobs:
                results[channel_id] = job.result()
    finally:
        for transport in transports.values():
            if not isinstance(transport, TransportDisabled):
                transport.close()
    return results


def _outcomes_record(claim, claimed, results, now, kinds) -> BatchReport:
    report = BatchReport()
    outcomes = defaultdict(int)  # (kind, status) → pushes, for the metrics once recorded
    Status = PushDelivery.Status
    claimed_rows = PushDelivery.objects.filter(claim=claim, status=Status.SENDING)
    groups = defaultdict(list)  # (status, last_error) → channel ids
    retry_after = 0.0
    deactivated = {}
    max_attempts = 0
    for channel_id, error in results.items():
        attempts = max(row["attempts"] for row in claimed[channel_id])
        if error is None:
            status, reason = Status.DELIVERED, ""
        elif isinstance(error, TransportDisabled):
            status, reason = Status.DISABLED, str(error)[:200]
        elif error.permanent or attempts >= settings.PUSH_MAX_ATTEMPTS:
            reason = error.message if error.permanent else f"gave up after {attempts} attempts: {error.message}"
            status, reason = Status.FAILED, reason[:200]
            if error.deactivate:
                deactivated[channel_id] = error.message
        else:
            status, reason = Status.RETRYING, error.message
            retry_after = max(retry_after, error.retry_after or 0.0)
            max_attempts = max(max_attempts, attempts)
        groups[(status, reason)].append(channel_id)
        outcomes[(kinds[channel_id], status.value)] += 1
    if any(status == Status.RETRYING for status, _ in groups):
        report.retry_delay = retry_delay_seconds(max_attempts, retry_after)
    with transaction.atomic():
        for (status, reason), channel_ids in groups.items():
            changes = {"status": status, "last_error": reason, "claim": None, "updated_at": now}
            if status == Status.DELIVERED:
                changes["delivered_at"] = now
            if status == Status.RETRYING:
                changes["due_at"] = now + timedelta(seconds=report.retry_delay)
            count = claimed_rows.filter(channel_id__in=channel_ids).update(**changes)
            setattr(report, status.value, getattr(report, status.value) + count)
            if status == Status.RETRYING:
                report.retry_ids.extend(row["notification_id"] for cid in channel_ids for row in claimed[cid])
        for reason, channel_ids in _by_value(deactivated).items():
            PushChannel.objects.filter(id__in=channel_ids).update(active=False, deactivated_reason=reason[:200])
        if deactivated:
            _deliveries_of_dead_channels_fail(list(deactivated), now)
    for (kind, status), count in outcomes.items():
        PUSHES.labels(provider=kind, status=status).inc(count)
    return report


def _deliveries_of_dead_channels_fail(channel_ids, now):
    """Other unfinished deliveries through channels just deactivated (an earlier retry, another
    batch's row) will never be sent: say so, so the dashboard and the reaper stop counting them."""
    PushDelivery.objects.filter(
        channel_id__in=channel_ids, status__in=[PushDelivery.Status.PENDING, PushDelivery.Status.RETRYING]
    ).update(status=PushDelivery.Status.FAILED, last_error="channel deactivated", claim=None, updated_at=now)


def _by_value(mapping):
    inverted = defaultdict(list)
    for key, value in mapping.items():
        inverted[value].append(key)
    return inverted


def push_deliver_batch(*, notification_ids) -> BatchReport:
    """Send the pushes due for these notifications, once per device, and record how each went.

    Safe to run twice or concurrently for the same ids (see the module's docstring).
    """
    notification_ids = sorted(set(notification_ids))
    now = timezone.now()
    claim = uuid.uuid4()
    for chunk in _chunks(notification_ids, ID_CHUNK):
        _deliveries_record(chunk, now)
        _deliveries_claim(chunk, now, claim)
    claimed = defaultdict(list)
    for row in PushDelivery.objects.filter(claim=claim).values("channel_id", "notification_id", "attempts"):
        claimed[row["channel_id"]].append(row)
    if not claimed:
        return BatchReport()
    channels = list(
        PushChannel.objects.filter(id__in=list(claimed)).values("id", "device_id", "kind", "address_sealed", "active")
    )
    messages = {
        channel_id: {
            "type": MESSAGE_TYPE_NOTIFICATIONS,
            "poll": POLL_PATH,
            "ids": sorted(row["notification_id"] for row in rows)[-MAX_IDS_PER_PUSH:],
        }
        for channel_id, rows in claimed.items()
    }
    results = _pushes_send(channels, messages)
    kinds = {channel["id"]: channel["kind"] for channel in channels}
    return _outcomes_record(claim, claimed, results, timezone.now(), kinds)


def push_deliveries_reap() -> list[list[int]]:
    """Batches of notification ids whose deliveries are overdue: a lease ended (worker died) or a
    scheduled retry was lost. The caller enqueues one task per batch; claiming keeps it safe."""
    overdue_before = timezone.now() - timedelta(seconds=settings.PUSH_REAP_GRACE_SECONDS)
    # Index pushdelivery_unfinished (partial on the unfinished statuses, by due_at).
    rows = (
        PushDelivery.objects.filter(status__in=UNFINISHED, due_at__lte=overdue_before)
        .order_by("due_at")
        .values_list("notification__device_id", "notification_id")[:REAP_LIMIT]
    )
    return list(_device_batches(set(rows)))


@dataclass(frozen=True)
class PushTestOutcome:
    """What a test push did: ``status`` (delivered, retrying, failed, disabled, no_channel,
    inactive), the channel's kind ("" without one), and the same in words."""

    status: str
    kind: str
    text: str


def push_test(*, device) -> PushTestOutcome:
    """Send a test push to the device now, for operators and the canary; say what happened.

    No notification is involved and nothing is recorded, except that a dead address
    deactivates the channel as a real push would.
    """
    channel = PushChannel.objects.filter(device=device).first()
    if channel is None:
        return PushTestOutcome("no_channel", "", "The device has no push channel; it polls.")
    if not channel.active:
        text = f"The device's {channel.kind} channel is inactive ({channel.deactivated_reason}); it polls."
        return PushTestOutcome("inactive", channel.kind, text)
    values = {"id": channel.id, "device_id": channel.device_id, "kind": channel.kind, "active": True}
    values["address_sealed"] = channel.address_sealed
    error = _pushes_send([values], {channel.id: {"type": MESSAGE_TYPE_TEST, "poll": POLL_PATH, "ids": []}})[channel.id]
    if error is None:
        return PushTestOutcome("delivered", channel.kind, f"Delivered to the {channel.kind} push service.")
    if isinstance(error, TransportDisabled):
        return PushTestOutcome("disabled", channel.kind, f"Not sent: {error}.")
    if error.deactivate:
        with transaction.atomic():
            PushChannel.objects.filter(id=channel.id).update(active=False, deactivated_reason=error.message)
            _deliveries_of_dead_channels_fail([channel.id], timezone.now())
        return PushTestOutcome("failed", channel.kind, f"Failed for good, channel deactivated: {error.message}")
    status = "failed" if error.permanent else "retrying"
    kind_of_failure = "permanent" if error.permanent else "transient"
    return PushTestOutcome(status, channel.kind, f"Failed ({kind_of_failure}): {error.message}")


def push_test_send(*, device) -> str:
    """:func:`push_test`, in words (``manage.py push_test``)."""
    return push_test(device=device).text
