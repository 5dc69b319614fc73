"""Devices, their visit tokens, cases and exposures, notifications and push channels.

The server never stores a venue or a time beside a device: a visit is only opaque 16-byte
tokens and the local date each belongs to (PROTOCOL §2). See DESIGN.md for the matching
core built on VisitToken and ExposureToken.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Risk(models.TextChoices):
    HIGH = "high", _("High")
    LOW = "low", _("Low")


class Device(models.Model):
    """A phone. It authenticates with a 32-byte secret, of which only a SHA-256 is stored.

    SHA-256 (not a slow password hash) is right here: the secret is 256 random bits, so
    there is nothing to brute-force, and the hash is looked up on every API call.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    secret_hash = models.BinaryField(max_length=32, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A date, not a time: enough to purge idle devices, too coarse to track anyone.
    last_seen_on = models.DateField(db_index=True)

    def __str__(self):
        return str(self.id)


class VisitToken(models.Model):
    """One uploaded visit token: ``(date, token, device)``, and nothing else.

    On PostgreSQL the table is partitioned by ``date`` (see the migration and
    notifications/partitions.py), so matching reads only the partitions of the dates in
    question and the retention purge drops whole partitions. ``date`` leads every key, so
    the table can later be distributed by it (Citus). There is no foreign key constraint to
    Device: checking one per row would slow ingest, and deleting a device deletes its
    tokens explicitly in the same transaction (notifications/devices.py).
    """

    pk = models.CompositePrimaryKey("date", "token", "device")
    date = models.DateField()
    token = models.BinaryField(max_length=16)
    device = models.ForeignKey(Device, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")

    class Meta:
        db_table = "notifications_visittoken"


class Case(models.Model):
    """A confirmed case, entered by a health official, with the venues it visited."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    reference = models.CharField(_("reference"), max_length=64, unique=True)
    confirmed_on = models.DateField(_("confirmation date"))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    message_en = models.TextField(_("message (English)"), blank=True)
    message_zh = models.TextField(_("message (Chinese)"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-confirmed_on", "-created_at"]

    def __str__(self):
        return self.reference


class CaseVisit(models.Model):
    """A venue a case visited and the window ``[start, end)`` of possible exposure."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="visits")
    venue = models.ForeignKey("venues.Venue", on_delete=models.PROTECT, related_name="case_visits")
    start = models.DateTimeField(_("window start"))
    end = models.DateTimeField(_("window end"))
    padding_minutes = models.PositiveIntegerField(_("padding (minutes)"), default=0)

    class Meta:
        ordering = ["start"]

    def __str__(self):
        return f"{self.case} @ {self.venue_id} {self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M}"


class ExposureToken(models.Model):
    """A token derived from a published case visit (PROTOCOL §3): slot → high, day → low."""

    date = models.DateField()
    token = models.BinaryField(max_length=16)
    case_visit = models.ForeignKey(CaseVisit, on_delete=models.CASCADE, related_name="exposure_tokens")
    risk = models.CharField(max_length=8, choices=Risk.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["date", "token", "case_visit"], name="one_exposure_token_per_case_visit")
        ]


class ExposureFeedItem(models.Model):
    """One line of the public exposure feed (``GET /api/v1/exposures``), append-only.

    Apps that match on the phone read it in pages of ``id`` ranges; a publication appends
    its tokens as ``active``, a withdrawal appends them again as ``withdrawn`` (the latest
    line for a ``(date, token)`` wins). Rows are never updated, so a closed page never
    changes; see notifications/feed.py for why ids commit in order. No foreign key to the
    case visit: deleting a case must not rewrite pages phones have already cached.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    id = models.BigAutoField(primary_key=True)
    date = models.DateField(db_index=True)
    token = models.BinaryField(max_length=16)
    risk = models.CharField(max_length=8, choices=Risk.choices)
    status = models.CharField(max_length=16, choices=Status.choices)


class Notification(models.Model):
    """What a device is told: one per (device, case visit), upgraded from low to high.

    Written only by the set-based statements of notifications/matching.py; ``updated_at``
    moves on every upgrade or withdrawal so phones polling incrementally see the change.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="notifications")
    case_visit = models.ForeignKey(CaseVisit, on_delete=models.CASCADE, related_name="notifications")
    risk = models.CharField(max_length=8, choices=Risk.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "case_visit"], name="one_notification_per_device_case_visit")
        ]
        indexes = [models.Index(fields=["device", "-created_at"])]


class MatchingRun(models.Model):
    """One run of a matching statement, for the admin dashboard: what it joined, how long it took.

    Publication chunks are always recorded; upload runs only when they found something, so a
    day of 20 million uploads does not write 20 million rows here.
    """

    class Direction(models.TextChoices):
        PUBLICATION = "publication", _("Publication against stored visits")
        UPLOAD = "upload", _("Upload against live exposures")

    direction = models.CharField(max_length=16, choices=Direction.choices)
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    date = models.DateField(null=True, blank=True)
    notifications = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(db_index=True)
    duration_ms = models.PositiveIntegerField()

    class Meta:
        ordering = ["-started_at"]


class PushChannel(models.Model):
    """How to wake a device: a Web Push subscription, an FCM token or an APNs token."""

    class Kind(models.TextChoices):
        WEBPUSH = "webpush", "Web Push"
        FCM = "fcm", "FCM"
        APNS = "apns", "APNs"

    device = models.OneToOneField(Device, on_delete=models.CASCADE, related_name="push_channel")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # Web Push: the subscription's endpoint URL and keys; FCM/APNs: the registration token.
    endpoint = models.TextField(blank=True)
    p256dh = models.CharField(max_length=128, blank=True)
    auth = models.CharField(max_length=64, blank=True)
    token = models.CharField(max_length=4096, blank=True)
    active = models.BooleanField(default=True)
    deactivated_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
