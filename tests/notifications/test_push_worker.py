"""Push delivery through a real broker and a real worker process: countdown retries and duplicated messages."""

import time

import pytest
from django.db import transaction

from leavehome.tasks import ping
from notifications.models import PushDelivery
from notifications.push.tasks import push_deliver, push_later
from tests.notifications.push_fixtures import device_with_channel, fcm_token, notifications_for
from tests.notifications.push_peers import FcmPeer

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def wait_for(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_503_is_retried_by_the_worker_after_its_countdown_and_delivered_once(worker_push_env, live_worker):
    fcm_peer = worker_push_env
    fcm_peer.script(fcm_token(), [(503, FcmPeer.error(503, "UNAVAILABLE"), None)])
    [notification] = notifications_for([device_with_channel({"kind": "fcm", "token": fcm_token()})])
    with transaction.atomic():
        push_later(notification_ids=[notification.id])
    assert wait_for(lambda: PushDelivery.objects.filter(status=PushDelivery.Status.DELIVERED).exists())
    first, second = fcm_peer.for_address(fcm_token())
    assert (first.status, second.status) == (503, 200)
    assert fcm_peer.problems == []
    delivery = PushDelivery.objects.get()
    assert delivery.attempts == 2


def test_duplicated_messages_in_the_broker_push_once(worker_push_env, live_worker):
    fcm_peer = worker_push_env
    [notification] = notifications_for([device_with_channel({"kind": "fcm", "token": fcm_token()})])
    with transaction.atomic():
        push_later(notification_ids=[notification.id])
    for _ in range(3):
        push_deliver.delay([notification.id])
    # One worker process runs its queue in order: once a ping queued last has answered,
    # every duplicate before it has run.
    assert ping.delay().get(timeout=30) == "pong"
    assert len(fcm_peer.for_address(fcm_token())) == 1
    assert PushDelivery.objects.get().status == PushDelivery.Status.DELIVERED
