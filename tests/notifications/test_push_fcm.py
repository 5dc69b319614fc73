"""FCM HTTP v1 delivery against a local OAuth token endpoint and messages:send that check every request."""

import pytest

from notifications.models import PushChannel, PushDelivery
from notifications.push.tasks import push_reap
from tests.notifications.push_fixtures import (
    deliveries_of,
    device_with_channel,
    fcm_token,
    notifications_for,
    push_now,
    wait_until_due,
)
from tests.notifications.push_peers import FcmPeer

pytestmark = pytest.mark.django_db


def fcm_device(n=0):
    return device_with_channel({"kind": "fcm", "token": fcm_token(n)})


def test_a_wake_up_is_a_data_only_message_authorised_by_a_service_account_token(
    fcm_peer, django_capture_on_commit_callbacks
):
    devices = [fcm_device(n) for n in range(3)]
    push_now(notifications_for(devices), django_capture_on_commit_callbacks)
    assert fcm_peer.problems == []
    assert sorted(item.address for item in fcm_peer.received) == sorted(fcm_token(n) for n in range(3))
    for item in fcm_peer.received:
        # Content-free: nothing but the kind of wake-up, so nothing about the exposure crosses Google.
        assert item.content["data"] == {"type": "lhs1.notifications"}
        assert item.content["android"]["priority"] == "HIGH"
    # One OAuth grant serves the whole batch (the access token is cached until it expires).
    assert fcm_peer.token_grants == 1
    assert PushDelivery.objects.filter(status=PushDelivery.Status.DELIVERED).count() == 3


def test_a_503_is_retried_after_backoff_and_delivered_once(fcm_peer, django_capture_on_commit_callbacks):
    fcm_peer.script(fcm_token(), [(503, FcmPeer.error(503, "UNAVAILABLE"), None)])
    [notification] = notifications_for([fcm_device()])
    push_now([notification], django_capture_on_commit_callbacks)
    [delivery] = deliveries_of(notification)
    assert (delivery.status, delivery.attempts) == (PushDelivery.Status.RETRYING, 1)
    assert "503" in delivery.last_error
    wait_until_due(delivery)
    push_reap.delay()
    push_reap.delay()  # nothing left to do: no second delivery
    assert [item.status for item in fcm_peer.for_address(fcm_token())] == [503, 200]
    [delivery] = deliveries_of(notification)
    assert (delivery.status, delivery.attempts) == (PushDelivery.Status.DELIVERED, 2)


def test_a_429_waits_for_its_retry_after(fcm_peer, django_capture_on_commit_callbacks):
    fcm_peer.script(
        fcm_token(), [(429, FcmPeer.error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), {"Retry-After": "2"})]
    )
    [notification] = notifications_for([fcm_device()])
    push_now([notification], django_capture_on_commit_callbacks)
    [delivery] = deliveries_of(notification)
    assert delivery.status == PushDelivery.Status.RETRYING
    assert (delivery.due_at - delivery.updated_at).total_seconds() >= 2
    # Before Retry-After has passed, nothing is sent, however often the reaper runs.
    push_reap.delay()
    assert len(fcm_peer.for_address(fcm_token())) == 1
    wait_until_due(delivery)
    push_reap.delay()
    first, second = fcm_peer.for_address(fcm_token())
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 2


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, FcmPeer.error(404, "NOT_FOUND", "UNREGISTERED")),
        (400, FcmPeer.error(400, "INVALID_ARGUMENT", "UNREGISTERED")),
        (403, FcmPeer.error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH")),
    ],
)
def test_an_unregistered_token_deactivates_the_channel_and_stops(
    fcm_peer, django_capture_on_commit_callbacks, status, body
):
    fcm_peer.script(fcm_token(), [(status, body, None)])
    device = fcm_device()
    [notification] = notifications_for([device])
    push_now([notification], django_capture_on_commit_callbacks)
    assert deliveries_of(notification)[0].status == PushDelivery.Status.FAILED
    channel = PushChannel.objects.get(device=device)
    assert not channel.active
    push_reap.delay()
    push_now(notifications_for([device]), django_capture_on_commit_callbacks)
    assert len(fcm_peer.received) == 1


def test_retries_end_after_the_last_attempt_and_the_channel_stays(
    fcm_peer, push_settings, django_capture_on_commit_callbacks
):
    push_settings.PUSH_MAX_ATTEMPTS = 2
    fcm_peer.script(fcm_token(), [(500, FcmPeer.error(500, "INTERNAL"), None)] * 3)
    device = fcm_device()
    [notification] = notifications_for([device])
    push_now([notification], django_capture_on_commit_callbacks)
    wait_until_due(deliveries_of(notification)[0])
    push_reap.delay()
    [delivery] = deliveries_of(notification)
    assert (delivery.status, delivery.attempts) == (PushDelivery.Status.FAILED, 2)
    assert delivery.last_error.startswith("gave up after 2 attempts")
    assert PushChannel.objects.get(device=device).active
    push_reap.delay()
    assert len(fcm_peer.received) == 2


def test_a_refused_access_token_is_replaced_by_a_new_grant(fcm_peer, django_capture_on_commit_callbacks):
    device = fcm_device()
    push_now(notifications_for([device]), django_capture_on_commit_callbacks)
    fcm_peer.access_tokens.clear()  # Google revoked the cached access token
    [notification] = notifications_for([device])
    push_now([notification], django_capture_on_commit_callbacks)
    assert deliveries_of(notification)[0].status == PushDelivery.Status.RETRYING
    wait_until_due(deliveries_of(notification)[0])
    push_reap.delay()
    assert deliveries_of(notification)[0].status == PushDelivery.Status.DELIVERED
    assert [item.status for item in fcm_peer.for_address(fcm_token())] == [200, 200]
    assert fcm_peer.token_grants == 2


def test_a_broken_token_endpoint_is_asked_once_per_batch(fcm_peer, django_capture_on_commit_callbacks):
    fcm_peer.credentials["client_email"] = "someone-else@example.com"  # the grant will not verify
    devices = [fcm_device(n) for n in range(4)]
    push_now(notifications_for(devices), django_capture_on_commit_callbacks)
    refusals = [item for item in fcm_peer.received if item.address == "token"]
    assert len(refusals) == 1
    assert PushDelivery.objects.filter(status=PushDelivery.Status.RETRYING).count() == 4


def test_unusable_credentials_disable_fcm_instead_of_failing_every_push(
    fcm_peer, push_settings, tmp_path, django_capture_on_commit_callbacks
):
    broken = tmp_path / "broken.json"
    broken.write_text('{"client_email": "push@example.com", "private_key": "not a key", "project_id": "p"}')
    push_settings.PUSH_FCM_CREDENTIALS_FILE = str(broken)
    [notification] = notifications_for([fcm_device()])
    push_now([notification], django_capture_on_commit_callbacks)
    [delivery] = deliveries_of(notification)
    assert delivery.status == PushDelivery.Status.DISABLED
    assert "PUSH_FCM_CREDENTIALS_FILE cannot be used" in delivery.last_error
    assert fcm_peer.received == []
