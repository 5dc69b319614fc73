"""Web Push delivery, end to end through a local push service holding real P-256 subscriptions."""

import datetime as dt
import logging

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from notifications.models import Case, CaseVisit, PushChannel, PushDelivery
from notifications.push import delivery
from notifications.push.tasks import push_deliver, push_later
from notifications.tasks import case_publish_and_match
from tests.notifications.push_fixtures import (
    deliveries_of,
    device_with_channel,
    notifications_for,
    push_now,
    webpush_body,
)
from tests.phone.server import venue_make
from venues.codes import code_qr_text
from venues.models import VenueCode

pytestmark = pytest.mark.django_db


def test_publication_pushes_an_encrypted_pointer_that_leads_the_phone_to_its_notification(
    webpush_receiver, push_phone, django_capture_on_commit_callbacks
):
    # A phone checks in at a venue, uploads its tokens and subscribes to Web Push, all through the API.
    now = int(timezone.now().timestamp())
    venue = venue_make()
    # The poster went up yesterday: exposures use the codes issued before the case's window.
    VenueCode.objects.filter(venue=venue).update(issued_at=timezone.now() - dt.timedelta(days=1))
    code = push_phone.scan(code_qr_text(VenueCode.objects.get(venue=venue)))
    push_phone.check_in(code, now - 3 * 3600, now - 2 * 3600)
    subscription = webpush_receiver.subscribe()
    with django_capture_on_commit_callbacks(execute=True):
        push_phone.upload()
        push_phone.set_push(webpush_body(subscription))
    assert webpush_receiver.received == []

    # A health official publishes a case that was there at the same time.
    official = get_user_model().objects.create_user(username="official@example.com", password="x" * 12)
    case = Case.objects.create(reference="HK-1", confirmed_on=timezone.localdate())
    start = timezone.now() - dt.timedelta(hours=3)
    CaseVisit.objects.create(case=case, venue=venue, start=start, end=start + dt.timedelta(minutes=30))
    with django_capture_on_commit_callbacks(execute=True):
        case_publish_and_match(case=case, actor=official)

    # The push service got one push, with a valid VAPID token for its origin, and the browser
    # decrypts a pointer: no venue, time or risk, only what to fetch.
    [push] = webpush_receiver.for_address(subscription.endpoint)
    assert push.problems == []
    assert push.status == 201
    assert set(push.content) == {"type", "poll", "ids"}
    assert push.content["type"] == "lhs1.notifications"
    # Following it, the phone finds the notification of this case, at high risk.
    items = push_phone.poll()
    assert push.content["poll"] == "/api/v1/notifications"
    [item] = [item for item in items if item["id"] in push.content["ids"]]
    assert item["venue"]["sub"] == str(venue.id)
    assert item["risk"] == "high"
    assert PushDelivery.objects.get().status == PushDelivery.Status.DELIVERED


def test_a_device_with_several_new_notifications_is_woken_once(webpush_receiver, django_capture_on_commit_callbacks):
    subscription = webpush_receiver.subscribe()
    device = device_with_channel(webpush_body(subscription))
    first = notifications_for([device])
    second = notifications_for([device])
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[first[0].id, second[0].id])
    [push] = webpush_receiver.received
    assert sorted(push.content["ids"]) == sorted([first[0].id, second[0].id])
    assert PushDelivery.objects.filter(status=PushDelivery.Status.DELIVERED).count() == 2


def test_a_redelivered_task_does_not_push_twice(webpush_receiver, django_capture_on_commit_callbacks):
    subscription = webpush_receiver.subscribe()
    [notification] = notifications_for([device_with_channel(webpush_body(subscription))])
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[notification.id])
    # The broker hands the same message out again (acks_late after a lost ack), and a duplicate.
    push_deliver.delay([notification.id])
    push_deliver.apply(args=([notification.id],))
    assert len(webpush_receiver.for_address(subscription.endpoint)) == 1
    [record] = deliveries_of(notification)
    assert (record.status, record.attempts) == (PushDelivery.Status.DELIVERED, 1)


def test_an_upgrade_from_low_to_high_wakes_the_phone_again(webpush_receiver, django_capture_on_commit_callbacks):
    subscription = webpush_receiver.subscribe()
    [notification] = notifications_for([device_with_channel(webpush_body(subscription))], risk="low")
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[notification.id])
    notification.risk = "high"
    notification.save()
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[notification.id])
    assert len(webpush_receiver.for_address(subscription.endpoint)) == 2
    assert [record.risk for record in deliveries_of(notification)] == ["low", "high"]


def test_a_batch_reuses_its_connections(webpush_receiver, push_settings, django_capture_on_commit_callbacks):
    push_settings.PUSH_CONCURRENCY = 2
    subscriptions = [webpush_receiver.subscribe() for _ in range(12)]
    devices = [device_with_channel(webpush_body(subscription)) for subscription in subscriptions]
    notifications = notifications_for(devices)
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[notification.id for notification in notifications])
    assert len(webpush_receiver.received) == 12
    assert webpush_receiver.problems == []
    # Twelve pushes over at most two keep-alive connections, not one connection each.
    assert len({push.connection for push in webpush_receiver.received}) <= 2


def test_a_gone_subscription_deactivates_the_channel_and_the_notification_is_still_polled(
    webpush_receiver, push_phone, django_capture_on_commit_callbacks
):
    subscription = webpush_receiver.subscribe()
    push_phone.set_push(webpush_body(subscription))
    webpush_receiver.script(subscription.endpoint, [(410, None, None)])
    channel = PushChannel.objects.get()
    [notification] = notifications_for([channel.device])
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[notification.id])
    channel.refresh_from_db()
    assert not channel.active
    assert "410" in channel.deactivated_reason
    [record] = deliveries_of(notification)
    assert record.status == PushDelivery.Status.FAILED
    # No more pushes to it, and the push_phone still learns of the notification by polling.
    [second] = notifications_for([channel.device])
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[second.id])
    assert len(webpush_receiver.received) == 1
    assert {item["id"] for item in push_phone.poll()} == {notification.id, second.id}


def test_a_server_error_is_retried_after_backoff_and_delivered_once(
    webpush_receiver, django_capture_on_commit_callbacks
):
    subscription = webpush_receiver.subscribe()
    webpush_receiver.script(subscription.endpoint, [(500, None, None)])
    [notification] = notifications_for([device_with_channel(webpush_body(subscription))])
    with django_capture_on_commit_callbacks(execute=True):
        push_later(notification_ids=[notification.id])
    [record] = deliveries_of(notification)
    assert record.status == PushDelivery.Status.RETRYING
    assert record.due_at > timezone.now()
    record.due_at = timezone.now()  # the backoff has passed
    record.save()
    push_deliver.delay([notification.id])
    assert [push.status for push in webpush_receiver.received] == [500, 201]
    assert deliveries_of(notification)[0].status == PushDelivery.Status.DELIVERED


def test_without_a_vapid_key_web_push_is_disabled_with_one_log_line(
    webpush_receiver, push_settings, caplog, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(delivery, "_disabled_logged", set())
    push_settings.PUSH_VAPID_PRIVATE_KEY = None
    devices = [device_with_channel(webpush_body(webpush_receiver.subscribe())) for _ in range(2)]
    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        for notification in notifications_for(devices):
            push_later(notification_ids=[notification.id])
    assert webpush_receiver.received == []
    assert PushDelivery.objects.filter(status=PushDelivery.Status.DISABLED).count() == 2
    [line] = [record.getMessage() for record in caplog.records if "disabled" in record.getMessage()]
    assert "webpush" in line and "PUSH_VAPID_PRIVATE_KEY" in line


def test_a_refused_connection_is_retried(webpush_receiver, django_capture_on_commit_callbacks):
    [notification] = notifications_for([device_with_channel(webpush_body(webpush_receiver.subscribe()))])
    webpush_receiver.close()  # the push service is down: connections are refused
    push_now([notification], django_capture_on_commit_callbacks)
    [record] = deliveries_of(notification)
    assert record.status == PushDelivery.Status.RETRYING
    assert "connection failed" in record.last_error


def test_a_redirect_is_not_followed(webpush_receiver, django_capture_on_commit_callbacks):
    subscription = webpush_receiver.subscribe()
    webpush_receiver.script(subscription.endpoint, [(307, None, {"Location": f"{webpush_receiver.url}/elsewhere"})])
    [notification] = notifications_for([device_with_channel(webpush_body(subscription))])
    push_now([notification], django_capture_on_commit_callbacks)
    assert [push.address for push in webpush_receiver.received] == [subscription.endpoint]
    [record] = deliveries_of(notification)
    assert (record.status, record.last_error) == (PushDelivery.Status.FAILED, "webpush answered 307")
