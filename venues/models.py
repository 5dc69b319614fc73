import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Category(models.TextChoices):
    """Venue categories; the slug travels in the code's ``cat`` claim (PROTOCOL §1)."""

    CATERING = "catering", _("Catering")
    RETAIL = "retail", _("Retail")
    GOVERNMENT = "government", _("Government")
    TAXI = "taxi", _("Taxi")
    EVENT = "event", _("Event")
    LEISURE = "leisure", _("Leisure and sports")
    EDUCATION = "education", _("Education")
    HEALTHCARE = "healthcare", _("Healthcare")
    TRANSPORT = "transport", _("Public transport")
    WORKPLACE = "workplace", _("Workplace")
    RELIGIOUS = "religious", _("Religious")
    OTHER = "other", _("Other")


class District(models.TextChoices):
    """Hong Kong's 18 districts."""

    CENTRAL_WESTERN = "central-western", _("Central and Western")
    WAN_CHAI = "wan-chai", _("Wan Chai")
    EASTERN = "eastern", _("Eastern")
    SOUTHERN = "southern", _("Southern")
    YAU_TSIM_MONG = "yau-tsim-mong", _("Yau Tsim Mong")
    SHAM_SHUI_PO = "sham-shui-po", _("Sham Shui Po")
    KOWLOON_CITY = "kowloon-city", _("Kowloon City")
    WONG_TAI_SIN = "wong-tai-sin", _("Wong Tai Sin")
    KWUN_TONG = "kwun-tong", _("Kwun Tong")
    KWAI_TSING = "kwai-tsing", _("Kwai Tsing")
    TSUEN_WAN = "tsuen-wan", _("Tsuen Wan")
    TUEN_MUN = "tuen-mun", _("Tuen Mun")
    YUEN_LONG = "yuen-long", _("Yuen Long")
    NORTH = "north", _("North")
    TAI_PO = "tai-po", _("Tai Po")
    SHA_TIN = "sha-tin", _("Sha Tin")
    SAI_KUNG = "sai-kung", _("Sai Kung")
    ISLANDS = "islands", _("Islands")


class SigningKey(models.Model):
    """An Ed25519 key that signs venue codes (PROTOCOL §1).

    One key is ``active`` and signs new codes. A ``retired`` key signs nothing new but stays
    in the published JWKS while codes signed by it are still valid; a ``withdrawn`` key is
    no longer published. The private half is stored encrypted under KEY_ENCRYPTION_KEY.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        RETIRED = "retired", _("Retired")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    kid = models.CharField(max_length=64, primary_key=True)
    public_key = models.BinaryField(max_length=32)
    private_key_encrypted = models.BinaryField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="active"), name="one_active_signing_key"
            )
        ]

    def __str__(self):
        return f"{self.kid} ({self.status})"


class VenueImport(models.Model):
    """One CSV upload through the express channel: the branches it created share it."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="venue_imports")
    file_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    venue_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.file_name or self.pk} ({self.venue_count})"


class Venue(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")
        CLOSED = "closed", _("Closed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="venues")
    name_en = models.CharField(_("name (English)"), max_length=200)
    name_zh = models.CharField(_("name (Chinese)"), max_length=200)
    address_en = models.CharField(_("address (English)"), max_length=300, blank=True)
    address_zh = models.CharField(_("address (Chinese)"), max_length=300, blank=True)
    district = models.CharField(_("district"), max_length=32, choices=District.choices, blank=True)
    category = models.CharField(_("category"), max_length=32, choices=Category.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    # The one code version that is valid while the venue is active (PROTOCOL §1 ``ver``).
    current_version = models.PositiveIntegerField(default=1)
    import_batch = models.ForeignKey(
        VenueImport, on_delete=models.SET_NULL, null=True, blank=True, related_name="venues", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["name_en"]
        indexes = [models.Index(fields=["owner", "name_en"])]

    def __str__(self):
        return f"{self.name_en} / {self.name_zh}"


class VenueCode(models.Model):
    """One version of a venue's code: its venue key ``vk`` and how it was signed.

    ``vk`` is stored only encrypted under TRACING_KEY (AES-GCM, the venue id and version as
    associated data), so a copy of the database alone cannot link visit tokens to venues.
    The JWS itself is not stored: Ed25519 is deterministic, so signing the same claims with
    the same key again yields the same code, byte for byte.
    """

    venue = models.ForeignKey(Venue, on_delete=models.CASCADE, related_name="codes")
    version = models.PositiveIntegerField()
    vk_encrypted = models.BinaryField()
    signing_key = models.ForeignKey(SigningKey, on_delete=models.PROTECT, related_name="codes")
    issued_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["venue", "version"], name="one_code_per_venue_version")]
        ordering = ["venue", "version"]

    def __str__(self):
        return f"{self.venue_id} v{self.version}"


class PosterBuild(models.Model):
    """A ZIP of posters being built by a worker for an owner, then kept for a while to download.

    Building thousands of posters takes minutes, so no web thread does it: the owner starts a
    build, watches its progress, and downloads the file when it is ready (venues/poster_builds.py).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Waiting for a worker")
        BUILDING = "building", _("Building")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="poster_builds")
    # None: every active venue of the owner; otherwise those of one CSV import.
    venue_import = models.ForeignKey(VenueImport, on_delete=models.CASCADE, null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    file = models.FileField(upload_to="posters/", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "status"])]
