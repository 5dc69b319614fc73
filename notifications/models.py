"""Devices, their visit tokens, cases and exposures, notifications and push channels.

The server never stores a venue or a time beside a device: a visit is only opaque 16-byte
tokens and the local date each belongs to (PROTOCOL §2, docs/protocol.md). docs/architecture.md
and notifications/matching.py describe the matching core built on VisitToken and ExposureToken.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
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


class UploadBacklog(models.Model):
    """A date of an upload not yet matched against live exposures: the sweep's queue.

    The upload writes one row per date in the transaction that stores its tokens, so a
    committed upload is always either in the backlog or matched; the sweep
    (notifications/matching.py, ``uploads_sweep``) claims rows oldest first, matches their
    devices' tokens of those dates, and deletes the rows in the transaction that writes the
    notifications. Nothing here names a venue or a time of a visit: ``created_at`` is when
    the upload arrived, kept only until it is matched (seconds), to measure the lag.
    """

    id = models.BigAutoField(primary_key=True)
    # No foreign key: like VisitToken, ingest must not pay for a constraint check per row;
    # deleting a device deletes its backlog rows explicitly (notifications/devices.py).
    device_id = models.UUIDField()
    date = models.DateField()
    # How many tokens of that date the upload held: the hourly figures count them as swept.
    tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self):
        return f"{self.device_id} {self.date}"


class PublicationBacklog(models.Model):
    """A chunk of a publication not yet matched against stored visits: the publication sweep's queue.

    ``case_publish`` writes one row per (date, up to ``matching.CASE_VISIT_BATCH`` case
    visits) in the transaction that publishes the case, so a committed publication is always
    either in this backlog or matched, whether or not its tasks reached the broker; the sweep
    (notifications/matching.py, ``publications_sweep_batch``) claims a row, matches it and
    deletes it in the transaction that writes the notifications. ``created_at`` measures
    how long a publication has waited (/healthz).
    """

    id = models.BigAutoField(primary_key=True)
    case = models.ForeignKey("Case", on_delete=models.CASCADE, related_name="+")
    date = models.DateField()
    case_visit_ids = models.JSONField()
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self):
        return f"{self.case_id} {self.date}"


class UploadHour(models.Model):
    """Uploads matched per hour of arrival, and how long they waited: kept by the sweep as it works.

    One row per hour (UTC), added to by every sweep batch in its own transaction, so the
    officials' charts read 24 small rows instead of counting a table of billions. ``uploads``
    counts (upload, date) backlog rows; the lag is from arrival to the commit of the sweep
    batch that matched them.
    """

    hour = models.DateTimeField(primary_key=True)
    uploads = models.PositiveBigIntegerField(default=0)
    tokens = models.PositiveBigIntegerField(default=0)
    lag_ms_total = models.PositiveBigIntegerField(default=0)
    lag_ms_max = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H:00} {self.uploads}"


class Case(models.Model):
    """A confirmed case, entered by a health official, with the venues it visited."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        # Its estimated reach is above PUBLICATION_APPROVAL_THRESHOLD: a second official approves.
        AWAITING_APPROVAL = "awaiting_approval", _("Awaiting approval")
        PUBLISHED = "published", _("Published")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    reference = models.CharField(_("reference"), max_length=64, unique=True)
    confirmed_on = models.DateField(_("confirmation date"))
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT, db_index=True)
    message_en = models.TextField(_("message (English)"), blank=True)
    message_zh = models.TextField(_("message (Chinese)"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    # The two-person rule (notifications/safety.py): who asked to publish, how many devices
    # the worker estimated it would notify, and who approved it.
    publish_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    estimated_devices = models.PositiveIntegerField(_("estimated devices"), null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    # When an official asked to publish (or approved) and no worker has published it yet: the
    # request is durable, so a publication queued while the broker was down is published by
    # the beat-driven sweep once it is back (notifications/tasks.py, ``publications_sweep``).
    publish_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The advice versions in force when the case was published (PROTOCOL §7): a later edit
    # of a template does not change what phones were already told.
    advice_high = models.ForeignKey(
        "AdviceTemplate", null=True, blank=True, on_delete=models.PROTECT, related_name="+", editable=False
    )
    advice_low = models.ForeignKey(
        "AdviceTemplate", null=True, blank=True, on_delete=models.PROTECT, related_name="+", editable=False
    )

    class Meta:
        ordering = ["-confirmed_on", "-created_at"]
        # The sweep's and /healthz's read: the few cases waiting for a worker, oldest first.
        indexes = [
            models.Index(
                fields=["publish_requested_at"],
                name="case_publish_requested",
                condition=models.Q(publish_requested_at__isnull=False),
            )
        ]
        # Publishing tells phones to get tested: a separate right from editing a draft.
        permissions = [("publish_case", _("Can publish and withdraw cases"))]

    def __str__(self):
        return self.reference


class CaseVisit(models.Model):
    """A venue a case visited and the window ``[start, end)`` of possible exposure."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="visits")
    venue = models.ForeignKey("venues.Venue", on_delete=models.PROTECT, related_name="case_visits")
    start = models.DateTimeField(_("window start"))
    end = models.DateTimeField(_("window end"))
    padding_minutes = models.PositiveIntegerField(_("padding (minutes)"), default=0)
    # Listed on the public exposure page while the case is published (notifications/public.py).
    public = models.BooleanField(_("show on the public list"), default=True)

    # --- where the visit came from and whether an official has reviewed it ----------------
    class Source(models.TextChoices):
        INTERVIEW = "interview", _("Interview")
        CSV = "csv", _("CSV import")
        UPLOAD = "upload", _("The case's upload")

    class Review(models.TextChoices):
        # An upload's visits are proposals: publication leaves them out until accepted.
        PROPOSED = "proposed", _("Proposed, awaiting review")
        ACCEPTED = "accepted", _("Accepted")

    source = models.CharField(_("source"), max_length=16, choices=Source.choices, default=Source.INTERVIEW)
    review = models.CharField(_("review"), max_length=16, choices=Review.choices, default=Review.ACCEPTED)

    class Meta:
        ordering = ["start"]

    def __str__(self):
        # Local time with its zone and the venue's name: what the official entered and reads.
        start, end = timezone.localtime(self.start), timezone.localtime(self.end)
        return f"{self.case} @ {self.venue.name_en} {start:%Y-%m-%d %H:%M}–{end:%H:%M} {end:%Z}"


class CaseUploadCode(models.Model):
    """A one-time code with which a confirmed case uploads their visit history (PROTOCOL §6).

    Only a keyed hash of the code is stored (HMAC under SECRET_KEY, notifications/case_uploads.py):
    the code has 50 bits, few enough that a plain hash in a copy of the database could be
    brute-forced. A code is live until it expires, is used once, or is revoked; it goes with
    its case when retention deletes the case. Nothing here links the upload to a device or an
    address.
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="upload_codes")
    code_hash = models.BinaryField(max_length=32, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"))
    used_at = models.DateTimeField(_("used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("case upload code")

    def __str__(self):
        return f"{self.case} {self.created_at:%Y-%m-%d %H:%M}"


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
    """How to wake a device: a Web Push subscription, an FCM token or an APNs token.

    The address (endpoint URL and keys, or the registration token) is a capability: whoever
    holds it can push to the phone. It is stored only sealed with AES-GCM under a key derived
    from KEY_ENCRYPTION_KEY (notifications/push/sealing.py), bound to the device and kind, so a
    copy of the database alone cannot push to anyone. ``address_hash`` (a keyed hash) lets one
    address belong to one device only: a reinstalled app re-registering its token takes it over.
    Written only by notifications/push/channels.py and delivery.py.
    """

    class Kind(models.TextChoices):
        WEBPUSH = "webpush", "Web Push"
        FCM = "fcm", "FCM"
        APNS = "apns", "APNs"

    device = models.OneToOneField(Device, on_delete=models.CASCADE, related_name="push_channel")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    address_hash = models.BinaryField(max_length=32, unique=True)
    address_sealed = models.BinaryField()
    active = models.BooleanField(default=True)
    deactivated_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class PushDelivery(models.Model):
    """One push for one notification at one risk through one channel, and how it went.

    The unique key makes delivery idempotent: a redelivered or duplicated task finds the row
    already claimed or delivered and does not push again. An upgrade from low to high risk is
    a new row, so the phone is woken again. Rows are claimed with a conditional UPDATE that
    sets ``claim``; ``due_at`` is when an unfinished row may be (re)claimed: at once when
    pending, after the backoff when retrying, when the claim's lease ends while sending (its
    worker died; the reaper in notifications/push/delivery.py takes it over). The counts by
    status feed the dashboard.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        DELIVERED = "delivered", _("Delivered")
        RETRYING = "retrying", _("Retrying")
        FAILED = "failed", _("Failed permanently")
        DISABLED = "disabled", _("Channel disabled")

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="push_deliveries")
    channel = models.ForeignKey(PushChannel, on_delete=models.CASCADE, related_name="deliveries")
    risk = models.CharField(max_length=8, choices=Risk.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    claim = models.UUIDField(null=True, blank=True)
    due_at = models.DateTimeField()
    last_error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "channel", "risk"], name="one_push_per_notification_channel_risk"
            )
        ]
        indexes = [
            models.Index(fields=["claim"], name="pushdelivery_claim"),
            # The reaper's scan: unfinished rows by when they are due.
            models.Index(
                fields=["due_at"],
                name="pushdelivery_unfinished",
                condition=models.Q(status__in=["pending", "sending", "retrying"]),
            ),
            # The dashboard's outcomes per hour read the last day's rows only.
            models.Index(fields=["created_at"], name="pushdelivery_created"),
        ]


class AdviceTemplate(models.Model):
    """What a notification advises, per risk level, in both languages (PROTOCOL §7).

    Rows are never edited: a change is a new version, and the highest version of a risk is
    the one in force. A publication pins the versions in force (Case.advice_high/low), so a
    phone told yesterday keeps yesterday's advice. ``{venue}``, ``{date}`` (the exposure
    date) and ``{test_dates}`` are filled in per notification (notifications/advice.py);
    the test dates are the exposure date plus each of ``test_day_offsets``.
    """

    risk = models.CharField(_("risk"), max_length=8, choices=Risk.choices)
    version = models.PositiveIntegerField(_("version"))
    text_en = models.TextField(_("advice (English)"))
    text_zh = models.TextField(_("advice (Chinese)"))
    test_day_offsets = models.JSONField(_("test days after exposure"), default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["risk", "-version"]
        constraints = [models.UniqueConstraint(fields=["risk", "version"], name="one_advice_version_per_risk")]
        permissions = [("edit_advice", _("Can edit the advice templates"))]

    def __str__(self):
        return f"{self.get_risk_display()} v{self.version}"


class KillSwitch(models.Model):
    """The one switch that pauses all publication matching and pushes (notifications/safety.py).

    A single row (pk 1). Workers read it before each matching or push task: one primary-key
    read. Work found paused is parked in DeferredTask and queued again when it is turned off.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    active = models.BooleanField(default=False)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [("operate_kill_switch", _("Can pause and resume all publication matching and pushes"))]

    def __str__(self):
        return str(_("on") if self.active else _("off"))


class DeferredTask(models.Model):
    """A matching or push task a worker found paused by the kill switch, to run when it is off."""

    id = models.BigAutoField(primary_key=True)
    task = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
