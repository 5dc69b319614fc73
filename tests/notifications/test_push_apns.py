"""APNs delivery against a local HTTP/2 server over TLS that checks every request's token and headers."""

import pytest

from notifications.models import PushChannel, PushDelivery
from notifications.push import delivery
from notifications.push.tasks import push_reap
from tests.notifications.push_fixtures import (
    apns_token,
    deliveries_of,
    device_with_channel,
    notifications_for,
    push_now,
    wait_until_due,
)

pytestmark = pytest.mark.django_db


def apns_device(n=0):
    return device_with_channel({"kind": "apns", "token": apns_token(n)})


def test_a_background_push_goes_over_http2_with_a_valid_provider_token(apns_peer, django_capture_on_commit_callbacks):
    devices = [apns_device(n) for n in range(3)]
    push_now(notifications_for(devices), django_capture_on_commit_callbacks)
    assert apns_peer.problems == []
    assert sorted(item.address for item in apns_peer.received) == sorted(apns_token(n) for n in range(3))
    # Content-free: a background push, no alert, nothing about the exposure.
    assert all(
        item.content == {"aps": {"content-available": 1}, "type": "lhs1.notifications"} for item in apns_peer.received
    )
    # One HTTP/2 connection, negotiated by ALPN, multiplexes the batch.
    assert apns_peer.alpn == ["h2"]
    assert PushDelivery.objects.filter(status=PushDelivery.Status.DELIVERED).count() == 3


def test_a_503_is_retried_and_delivered_once(apns_peer, django_capture_on_commit_callbacks):
    apns_peer.script(apns_token(), [(503, {"reason": "ServiceUnavailable"}, None)])
    [notification] = notifications_for([apns_device()])
    push_now([notification], django_capture_on_commit_callbacks)
    assert deliveries_of(notification)[0].status == PushDelivery.Status.RETRYING
    wait_until_due(deliveries_of(notification)[0])
    push_reap.delay()
    push_reap.delay()
    assert [item.status for item in apns_peer.for_address(apns_token())] == [503, 200]
    assert deliveries_of(notification)[0].status == PushDelivery.Status.DELIVERED


def test_a_429_waits_for_its_retry_after(apns_peer, django_capture_on_commit_callbacks):
    apns_peer.script(apns_token(), [(429, {"reason": "TooManyRequests"}, {"Retry-After": "1"})])
    [notification] = notifications_for([apns_device()])
    push_now([notification], django_capture_on_commit_callbacks)
    push_reap.delay()
    assert len(apns_peer.for_address(apns_token())) == 1
    wait_until_due(deliveries_of(notification)[0])
    push_reap.delay()
    first, second = apns_peer.for_address(apns_token())
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1


@pytest.mark.parametrize(
    ("status", "reason"), [(410, "Unregistered"), (400, "BadDeviceToken"), (400, "DeviceTokenNotForTopic")]
)
def test_a_dead_token_deactivates_the_channel_and_stops(apns_peer, django_capture_on_commit_callbacks, status, reason):
    apns_peer.script(apns_token(), [(status, {"reason": reason}, None)])
    device = apns_device()
    [notification] = notifications_for([device])
    push_now([notification], django_capture_on_commit_callbacks)
    [delivery] = deliveries_of(notification)
    assert delivery.status == PushDelivery.Status.FAILED
    assert reason in delivery.last_error
    assert not PushChannel.objects.get(device=device).active
    push_reap.delay()
    push_now(notifications_for([device]), django_capture_on_commit_callbacks)
    assert len(apns_peer.received) == 1


def test_without_a_key_apns_is_disabled_and_the_device_polls(
    apns_peer, push_settings, caplog, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(delivery, "_disabled_logged", set())
    push_settings.PUSH_APNS_KEY_FILE = None
    [notification] = notifications_for([apns_device()])
    push_now([notification], django_capture_on_commit_callbacks)
    assert apns_peer.received == []
    [record] = deliveries_of(notification)
    assert record.status == PushDelivery.Status.DISABLED
    assert any("apns is disabled: PUSH_APNS_KEY_FILE" in line.getMessage() for line in caplog.records)
