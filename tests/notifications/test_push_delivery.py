"""Delivery bookkeeping: batching, claims and the reaper, devices without a channel, the operators' command."""

import datetime as dt
import io
import threading
import time
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from notifications.models import Notification, PushChannel, PushDelivery
from notifications.push.delivery import _deliveries_claim, _deliveries_record, retry_delay_seconds
from notifications.push.tasks import push_later, push_reap
from tests.notifications.push_fixtures import (
    apns_token,
    deliveries_of,
    device_make,
    device_with_channel,
    fcm_token,
    notifications_for,
    webpush_body,
)
from tests.notifications.push_peers import b64u

pytestmark = pytest.mark.django_db


def test_push_later_enqueues_one_task_per_batch_of_devices_on_commit(
    webpush_receiver, push_settings, django_capture_on_commit_callbacks
):
    push_settings.PUSH_BATCH_DEVICES = 2
    devices = [device_with_channel(webpush_body(webpush_receiver.subscribe())) for _ in range(5)]
    notifications = notifications_for(devices) + notifications_for(devices[:1])
    with django_capture_on_commit_callbacks() as callbacks:
        push_later(notification_ids=[notification.id for notification in notifications])
    # Nothing is sent before the transaction commits; then 3 tasks for 5 devices.
    assert webpush_receiver.received == []
    assert len(callbacks) == 3
    for callback in callbacks:
        callback()
    assert len(webpush_receiver.received) == 5


def test_devices_without_an_active_channel_get_no_task_and_poll(django_capture_on_commit_callbacks):
    without = device_make()
    inactive = device_with_channel({"kind": "fcm", "token": fcm_token()})
    PushChannel.objects.update(active=False)
    notifications = notifications_for([without, inactive])
    with django_capture_on_commit_callbacks() as callbacks:
        push_later(notification_ids=[notification.id for notification in notifications])
    assert callbacks == []
    assert Notification.objects.count() == 2


def test_a_withdrawn_notification_is_not_pushed(webpush_receiver, django_capture_on_commit_callbacks):
    device = device_with_channel(webpush_body(webpush_receiver.subscribe()))
    [notification] = notifications_for([device])
    Notification.objects.update(status=Notification.Status.WITHDRAWN)
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[notification.id])
    assert webpush_receiver.received == []
    assert not PushDelivery.objects.exists()


def test_the_reaper_takes_over_a_claim_whose_worker_died(webpush_receiver, django_capture_on_commit_callbacks):
    subscription = webpush_receiver.subscribe()
    [notification] = notifications_for([device_with_channel(webpush_body(subscription))])
    # A worker claimed the push and died before sending: the row stays "sending" under its lease.
    PushDelivery.objects.create(
        notification=notification,
        channel=PushChannel.objects.get(),
        risk=notification.risk,
        status=PushDelivery.Status.SENDING,
        attempts=1,
        due_at=timezone.now() + dt.timedelta(minutes=5),
    )
    push_reap.delay()
    assert webpush_receiver.received == []  # the lease still holds: it may yet finish
    PushDelivery.objects.update(due_at=timezone.now() - dt.timedelta(seconds=1))
    push_reap.delay()
    assert len(webpush_receiver.for_address(subscription.endpoint)) == 1
    [delivery] = deliveries_of(notification)
    assert (delivery.status, delivery.attempts) == (PushDelivery.Status.DELIVERED, 2)


def test_backoff_grows_exponentially_with_jitter_and_honours_retry_after(settings):
    settings.PUSH_RETRY_BASE_SECONDS = 10
    settings.PUSH_RETRY_MAX_SECONDS = 3600
    for attempts in range(1, 6):
        ceiling = 10 * 2 ** (attempts - 1)
        delays = {retry_delay_seconds(attempts) for _ in range(50)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1  # jittered
    assert retry_delay_seconds(20) <= 3600
    assert retry_delay_seconds(1, retry_after=120) >= 120


def test_the_test_command_pushes_to_a_device(webpush_receiver):
    subscription = webpush_receiver.subscribe()
    device = device_with_channel(webpush_body(subscription))
    out = io.StringIO()
    call_command("push_test", str(device.pk), stdout=out)
    assert "Delivered" in out.getvalue()
    [push] = webpush_receiver.received
    assert push.problems == []
    assert push.content["type"] == "lhs1.test"


def test_the_test_command_reports_a_dead_token_and_deactivates_it(apns_peer):
    apns_peer.script(apns_token(), [(410, {"reason": "Unregistered"}, None)])
    device = device_with_channel({"kind": "apns", "token": apns_token()})
    out = io.StringIO()
    call_command("push_test", str(device.pk), stdout=out)
    assert "deactivated" in out.getvalue()
    assert not PushChannel.objects.get().active


def test_the_test_command_says_when_a_device_polls():
    out = io.StringIO()
    call_command("push_test", str(device_make().pk), stdout=out)
    assert "no push channel" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("push_test", "not-a-uuid")


def test_the_vapid_key_command_prints_the_application_server_key(push_settings, vapid_key):
    out = io.StringIO()
    call_command("push_vapid_key", stdout=out)
    public = vapid_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert out.getvalue().strip() == b64u(public)


def test_a_dead_channel_fails_its_other_unfinished_deliveries(fcm_peer, django_capture_on_commit_callbacks):
    device = device_with_channel({"kind": "fcm", "token": fcm_token()})
    fcm_peer.script(fcm_token(), [(503, fcm_peer.error(503, "UNAVAILABLE"), None)])
    [first] = notifications_for([device])
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[first.id])
    assert deliveries_of(first)[0].status == PushDelivery.Status.RETRYING
    # Meanwhile the next notification finds the token unregistered.
    fcm_peer.script(fcm_token(), [(404, fcm_peer.error(404, "NOT_FOUND", "UNREGISTERED"), None)])
    [second] = notifications_for([device])
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[second.id])
    assert deliveries_of(first)[0].status == PushDelivery.Status.FAILED
    assert deliveries_of(first)[0].last_error == "channel deactivated"
    PushDelivery.objects.update(due_at=timezone.now() - dt.timedelta(seconds=1))
    push_reap.delay()
    assert len(fcm_peer.received) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_tasks_claiming_the_same_deliveries_at_once_claim_them_once(webpush_receiver):
    notifications = notifications_for(
        [device_with_channel(webpush_body(webpush_receiver.subscribe())) for _ in range(3)]
    )
    ids = [notification.id for notification in notifications]
    _deliveries_record(ids, timezone.now())
    first_claimed = threading.Event()
    claims = {}

    def claim(name, hold):
        try:
            with transaction.atomic():
                claims[name] = uuid.uuid4()
                _deliveries_claim(ids, timezone.now(), claims[name])
                if hold:
                    first_claimed.set()
                    time.sleep(0.5)  # the other claim now waits on these rows' locks
        finally:
            connection.close()

    holder = threading.Thread(target=claim, args=("first", True))
    holder.start()
    first_claimed.wait(10)
    claim("second", False)  # blocks until the first commits, then re-checks the rows
    holder.join()
    assert PushDelivery.objects.filter(claim=claims["first"]).count() == 3
    assert PushDelivery.objects.filter(claim=claims["second"]).count() == 0
