"""Devices: registration, authentication by secret, and deletion of everything they hold.

A device's secret is 32 random bytes shown once at registration; the server keeps only its
SHA-256 (see Device for why a fast hash is right). Nothing else identifies a phone.
"""

import base64
import hashlib
import hmac
import secrets

from django.db import transaction
from django.utils import timezone

from notifications.models import Device, Notification, PushChannel, UploadBacklog, VisitToken

SECRET_BYTES = 32


def device_secret_hash(secret: str) -> bytes:
    """What is stored of a secret (an ASCII string): its SHA-256."""
    return hashlib.sha256(secret.encode("ascii")).digest()


def device_register() -> tuple[Device, str]:
    """Create a device; returns it and its secret (b64u of 32 random bytes), which is never stored."""
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode("ascii")
    device = Device.objects.create(secret_hash=device_secret_hash(secret), last_seen_on=timezone.localdate())
    return device, secret


def device_authenticate(secret: str) -> Device | None:
    """The device whose secret this is, or None.

    The lookup goes through the unique index on ``secret_hash``; the final comparison is in
    constant time so the answer's timing says nothing about how close a guess was.
    """
    if not secret.isascii():
        return None
    digest = device_secret_hash(secret)
    device = Device.objects.filter(secret_hash=digest).first()
    if device is None or not hmac.compare_digest(bytes(device.secret_hash), digest):
        return None
    return device


def device_seen(device: Device) -> None:
    """Record that the device called today: at most one write per device and day.

    The conditional UPDATE makes concurrent first calls of the day write once between them.
    """
    today = timezone.localdate()
    if device.last_seen_on == today:
        return
    Device.objects.filter(pk=device.pk, last_seen_on__lt=today).update(last_seen_on=today)
    device.last_seen_on = today


@transaction.atomic
def device_delete(device: Device) -> None:
    """Delete the device and everything of it, in one transaction.

    VisitToken and UploadBacklog have no foreign key constraint (it would slow ingest), so
    their rows are deleted explicitly; notifications and the push channel are deleted with the ORM so that
    rows hanging off them by CASCADE (push delivery records) go too. After commit the old
    secret matches nothing and gets 401.

    The device row is locked first: an upload in flight holds a KEY SHARE lock on it
    (notifications/visits.py), so deletion waits for that upload to commit and then deletes
    its tokens too, and an upload that starts later finds no device and stores nothing.
    Without the lock an upload committing just after the token DELETE would leave rows
    behind that reference no device.
    """
    if not Device.objects.select_for_update().filter(pk=device.pk).exists():
        return  # already deleted (a repeated request)
    VisitToken.objects.filter(device_id=device.pk).delete()
    UploadBacklog.objects.filter(device_id=device.pk).delete()
    Notification.objects.filter(device_id=device.pk).delete()
    PushChannel.objects.filter(device_id=device.pk).delete()
    Device.objects.filter(pk=device.pk).delete()
