"""notifications.devices: secrets, and deletion of a device with everything of it."""

import datetime as dt
import secrets

import pytest
from django.conf import settings
from django.utils import timezone

from notifications.devices import device_authenticate, device_delete
from notifications.models import Device, Notification, PushChannel, PushDelivery, VisitToken
from notifications.push.channels import push_channel_set
from notifications.visits import visit_tokens_ingest
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
