"""Every push outcome is counted by provider and status, the figure the push-failure alert watches."""

import pytest
from prometheus_client import REGISTRY

from notifications.push.tasks import push_later
from tests.notifications.push_fixtures import device_with_channel, fcm_token, notifications_for, webpush_body

pytestmark = pytest.mark.django_db


def _sends(provider, status):
    return REGISTRY.get_sample_value("leavehome_push_sends_total", {"provider": provider, "status": status}) or 0.0


def test_push_outcomes_are_counted_per_provider_and_status(
    webpush_receiver, fcm_peer, django_capture_on_commit_callbacks
):
    before = {key: _sends(*key) for key in [("webpush", "delivered"), ("fcm", "retrying"), ("fcm", "failed")]}
    webpush_device = device_with_channel(webpush_body(webpush_receiver.subscribe()))
    fcm_device = device_with_channel({"kind": "fcm", "token": fcm_token()})
    fcm_peer.script(fcm_token(), [(503, fcm_peer.error(503, "UNAVAILABLE"), None)])
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[n.id for n in notifications_for([webpush_device, fcm_device])])
    fcm_peer.script(fcm_token(), [(404, fcm_peer.error(404, "NOT_FOUND", "UNREGISTERED"), None)])
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[n.id for n in notifications_for([fcm_device])])

    assert _sends("webpush", "delivered") - before[("webpush", "delivered")] == 1
    assert _sends("fcm", "retrying") - before[("fcm", "retrying")] == 1
    assert _sends("fcm", "failed") - before[("fcm", "failed")] == 1
