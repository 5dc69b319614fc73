"""Fixtures of the push tests: settings pointing at the local peers of push_peers.py, and data.

Made visible to tests/notifications/test_push_*.py by tests/notifications/conftest.py; the
helpers are imported by name.
"""

import datetime as dt
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone

from notifications.devices import device_register
from notifications.models import PushDelivery
from notifications.push.channels import push_channel_set
from notifications.push.tasks import push_later
from tests.notifications.push_peers import ApnsPeer, FcmPeer, WebPushReceiver
from tests.phone.server import case_visit_make, in_process_phone, notification_make, venue_make


@pytest.fixture
def vapid_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def push_settings(settings, vapid_key):
    """Fast retries, a reaper without grace, loopback Web Push allowed, a VAPID key."""
    settings.PUSH_VAPID_PRIVATE_KEY = vapid_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    settings.PUSH_VAPID_SUBJECT = "mailto:push-test@leavehome.example"
    settings.PUSH_WEBPUSH_INSECURE_HOSTS = ["127.0.0.1"]
    settings.PUSH_RETRY_BASE_SECONDS = 0.2
    settings.PUSH_RETRY_MAX_SECONDS = 1
    settings.PUSH_REAP_GRACE_SECONDS = 0
    settings.PUSH_TIMEOUT_SECONDS = 5
    return settings


@pytest.fixture
def worker_push_env(fcm_peer, push_settings, monkeypatch):
    """The worker process reads its settings from the environment: point it at the FCM peer."""
    for name in ("PUSH_FCM_CREDENTIALS_FILE", "PUSH_FCM_API_URL"):
        monkeypatch.setenv(name, getattr(push_settings, name))
    monkeypatch.setenv("PUSH_RETRY_BASE_SECONDS", "0.5")
    monkeypatch.setenv("PUSH_RETRY_MAX_SECONDS", "1")
    return fcm_peer


@pytest.fixture
def webpush_receiver(push_settings, vapid_key):
    receiver = WebPushReceiver(
        vapid_public_key=vapid_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )
    yield receiver
    receiver.close()


@pytest.fixture
def fcm_peer(push_settings, tmp_path):
    peer = FcmPeer()
    credentials_path = tmp_path / "service-account.json"
    credentials_path.write_text(json.dumps(peer.credentials))
    push_settings.PUSH_FCM_CREDENTIALS_FILE = str(credentials_path)
    push_settings.PUSH_FCM_API_URL = peer.url
    yield peer
    peer.close()


@pytest.fixture
def apns_peer(push_settings, tmp_path):
    peer = ApnsPeer(tmp_path)
    for name, value in peer.settings().items():
        setattr(push_settings, name, value)
    yield peer
    peer.close()


@pytest.fixture
def push_phone(db):
    """A reference phone client calling the app in-process, registered.

    As Django's test client does, the start and end of a request must not close the
    connection that holds the test's transaction.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        phone = in_process_phone()
        phone.register()
        yield phone
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def device_make():
    device, _secret = device_register()
    return device


def fcm_token(n=0):
    return f"fcm-token-{n}:APA91b" + "x" * 100


def apns_token(n=0):
    return f"{n:064x}"


def device_with_channel(data):
    device = device_make()
    push_channel_set(device=device, data=data)
    return device


def notifications_for(devices, *, risk="high"):
    """One notification per device for a fresh case visit (made directly, as matching would)."""
    venue = venue_make()
    case_visit = case_visit_make(venue=venue, start=timezone.now() - dt.timedelta(hours=3))
    return [notification_make(device=device, case_visit=case_visit, risk=risk) for device in devices]


def deliveries_of(notification):
    return list(PushDelivery.objects.filter(notification=notification).order_by("id"))


def webpush_body(subscription):
    """The PUT /api/v1/devices/me/push body for a receiver's subscription."""
    return {"kind": "webpush", "subscription": subscription.as_json()}


def push_now(notifications, capture):
    """push_later in a transaction, and run what it registered on commit (``capture`` is
    pytest-django's django_capture_on_commit_callbacks)."""
    with capture(execute=True):
        push_later(notification_ids=[notification.id for notification in notifications])


def wait_until_due(delivery):
    """Let a retrying delivery's backoff pass (a fraction of a second under push_settings)."""
    time.sleep(max(0.0, (delivery.due_at - timezone.now()).total_seconds()) + 0.05)
