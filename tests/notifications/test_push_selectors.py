"""The dashboard's view of push delivery."""

import datetime as dt

import pytest
from django.utils import timezone

from notifications.push.selectors import push_delivery_summary
from notifications.push.tasks import push_later
from tests.notifications.push_fixtures import (
    device_make,
    device_with_channel,
    fcm_token,
    notifications_for,
    webpush_body,
)

pytestmark = pytest.mark.django_db


def test_the_dashboard_summary_counts_outcomes_by_status_and_kind(
    webpush_receiver, fcm_peer, django_capture_on_commit_callbacks
):
    fcm_peer.script(fcm_token(), [(404, fcm_peer.error(404, "NOT_FOUND", "UNREGISTERED"), None)])
    devices = [
        device_with_channel(webpush_body(webpush_receiver.subscribe())),
        device_with_channel({"kind": "fcm", "token": fcm_token()}),
        device_make(),
    ]
    notifications = notifications_for(devices)
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[notification.id for notification in notifications])
    summary = push_delivery_summary()
    assert summary["deliveries"]["delivered"] == 1
    assert summary["deliveries"]["failed"] == 1
    assert summary["deliveries_by_kind"]["fcm"]["failed"] == 1
    assert summary["channels"]["fcm"] == {"active": 0, "inactive": 1}
    assert summary["channels"]["webpush"] == {"active": 1, "inactive": 0}
    assert push_delivery_summary(since=timezone.now() + dt.timedelta(minutes=1))["deliveries"]["delivered"] == 0
