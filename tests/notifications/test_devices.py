"""notifications.devices: secrets, and deletion of a device with everything of it."""

import datetime as dt
import secrets
import threading

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from notifications.devices import device_authenticate, device_delete
from notifications.models import Device, Notification, PushChannel, PushDelivery, VisitToken
from notifications.partitions import visit_token_partitions_ensure
from notifications.push.channels import push_channel_set
from notifications.visits import DeviceDeleted, visit_tokens_ingest
from tests import phone
from tests.phone.server import case_publish_at, device_with_secret, rows_referencing_device, venue_make, venue_qr_text
from venues.codes import qr_prefix
from venues.keys import jwks_document

pytestmark = pytest.mark.django_db


def test_secret_authenticates_only_its_device():
    device, secret = device_with_secret()
    other, _ = device_with_secret()
    assert device_authenticate(secret) == device
    assert device_authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert device_authenticate("") is None
    assert device_authenticate("é" * 43) is None
    assert other != device


def _device_with_everything(django_capture_on_commit_callbacks):
    """A device with uploaded tokens, a notification from real matching, a push channel and a delivery row."""
    venue = venue_make()
    code = phone.verify_venue_code(
        venue_qr_text(venue), prefix=qr_prefix(), issuer=settings.SITE_URL, jwks=jwks_document(), revocations={}
    )
    start = (timezone.now() - dt.timedelta(hours=5)).replace(second=0, microsecond=0)
    device, secret = device_with_secret()
    t_in = int(start.timestamp())
    with django_capture_on_commit_callbacks(execute=True):
        visit_tokens_ingest(device=device, days=phone.visit_tokens(code.vk, t_in, t_in + 3600, settings.TIME_ZONE))
    with django_capture_on_commit_callbacks(execute=True):
        case_publish_at(venue=venue, start=start, minutes=30)
    apns_token = secrets.token_hex(32)  # an address belongs to one device: each gets its own
    channel = push_channel_set(device=device, data={"kind": "apns", "token": apns_token})
    notification = Notification.objects.get(device=device)
    PushDelivery.objects.get_or_create(
        notification=notification, channel=channel, risk=notification.risk, defaults={"due_at": timezone.now()}
    )
    return device, secret


def test_deleting_a_device_leaves_no_row_that_references_it(django_capture_on_commit_callbacks):
    device, _ = _device_with_everything(django_capture_on_commit_callbacks)
    bystander, _ = _device_with_everything(django_capture_on_commit_callbacks)
    before = rows_referencing_device(device.pk)
    # The setup really put rows in each table the deletion must clear.
    for table in ("notifications_visittoken", "notifications_notification", "notifications_pushchannel"):
        assert before[f"{table}.device_id"] > 0, before
    assert PushDelivery.objects.filter(notification__device=device).exists()

    device_delete(device)

    assert set(rows_referencing_device(device.pk).values()) == {0}
    assert not PushDelivery.objects.filter(channel__device_id=device.pk).exists()
    # The other device keeps all of its rows.
    assert rows_referencing_device(bystander.pk) == rows_referencing_device(bystander.pk) | {
        "notifications_device.id": 1
    }
    assert VisitToken.objects.filter(device_id=bystander.pk).exists()
    assert PushChannel.objects.filter(device=bystander).exists()
    assert Device.objects.filter(pk=bystander.pk).exists()


def test_deletion_through_the_api_then_the_old_secret_is_401(client, django_capture_on_commit_callbacks):
    device, secret = _device_with_everything(django_capture_on_commit_callbacks)
    answer = client.delete("/api/v1/devices/me", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert answer.status_code == 204
    assert set(rows_referencing_device(device.pk).values()) == {0}
    assert client.get("/api/v1/notifications", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


def test_an_upload_for_a_deleted_device_stores_nothing():
    device, _ = device_with_secret()
    device_delete(device)
    with pytest.raises(DeviceDeleted):
        visit_tokens_ingest(device=device, days={timezone.localdate(): [secrets.token_bytes(16)]})
    assert not VisitToken.objects.exists()


def test_deleting_twice_is_harmless():
    device, _ = device_with_secret()
    device_delete(device)
    device_delete(device)
    assert not Device.objects.filter(pk=device.pk).exists()


def _in_thread(target, started: threading.Event, release: threading.Event, errors: list):
    def run():
        try:
            with transaction.atomic():
                target()
                started.set()
                release.wait(30)
        except Exception as error:  # reported by the test's assertions
            errors.append(error)
            started.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wait_for_a_blocked_lock():
    for _ in range(300):
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                return
        threading.Event().wait(0.05)
    raise AssertionError("the second transaction never waited for the first")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_deletion_waits_for_an_upload_in_flight_and_removes_its_tokens():
    device, _ = device_with_secret()
    days = {timezone.localdate(): [secrets.token_bytes(16) for _ in range(5)]}
    visit_token_partitions_ensure(days)  # outside the race: partition creation takes its own lock
    uploaded, release, errors = threading.Event(), threading.Event(), []
    upload = _in_thread(lambda: visit_tokens_ingest(device=device, days=days), uploaded, release, errors)
    assert uploaded.wait(30)
    deletion = threading.Thread(target=lambda: (device_delete(device), connections.close_all()))
    deletion.start()
    _wait_for_a_blocked_lock()  # the deletion waits for the upload's lock on the device row
    release.set()
    upload.join(30)
    deletion.join(30)
    assert not errors
    assert set(rows_referencing_device(device.pk).values()) == {0}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_upload_that_meets_a_deletion_in_flight_stores_nothing():
    device, _ = device_with_secret()
    days = {timezone.localdate(): [secrets.token_bytes(16) for _ in range(5)]}
    visit_token_partitions_ensure(days)
    deleting, release, errors = threading.Event(), threading.Event(), []
    deletion = _in_thread(lambda: device_delete(device), deleting, release, errors)
    assert deleting.wait(30)
    upload_errors = []

    def upload():
        try:
            visit_tokens_ingest(device=device, days=days)
        except DeviceDeleted as error:
            upload_errors.append(error)
        finally:
            connections.close_all()

    uploader = threading.Thread(target=upload)
    uploader.start()
    _wait_for_a_blocked_lock()  # the upload waits for the deletion's lock on the device row
    release.set()
    deletion.join(30)
    uploader.join(30)
    assert not errors
    assert len(upload_errors) == 1
    assert set(rows_referencing_device(device.pk).values()) == {0}
