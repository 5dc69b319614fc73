"""Services that change venues and their codes. Each runs in one transaction.

A venue's valid code is the version ``Venue.current_version`` while the venue is active;
every other version is revoked. The public revocation list is derived from exactly that
(see selectors.revocations_document), and ``VenueCode.revoked_at`` records when each
version stopped being valid, for the exposure builders and the audit trail.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from leavehome.audit import audit_record
from leavehome.errors import ServiceError
from venues import keystore
from venues.keys import signing_key_active
from venues.models import Category, SigningKey, Venue, VenueCode
from venues.validators import taxi_plate_normalise


class VenueStateError(ServiceError):
    """The action does not apply to the venue in its present state (e.g. regenerating a closed one)."""

    code = "venue_state"
    status = 409


def _now_whole_seconds():
    # ``iat`` is whole Unix seconds; storing the same keeps the re-signed JWS identical.
    return timezone.now().replace(microsecond=0)


def venue_build(*, owner, name_en, name_zh, address_en="", address_zh="", district="", category) -> Venue:
    """An unsaved, validated Venue; a taxi's names become its normalised licence plate."""
    if category == Category.TAXI:
        try:
            name_en = name_zh = taxi_plate_normalise(name_en or name_zh)
        except ValidationError as error:
            raise ValidationError({"name_en": error.messages}) from error
    venue = Venue(
        owner=owner,
        name_en=name_en.strip(),
        name_zh=name_zh.strip(),
        address_en=address_en.strip(),
        address_zh=address_zh.strip(),
        district=district,
        category=category,
    )
    # Field checks only: the primary key is a fresh UUID, and a uniqueness query per venue
    # would turn a chain's import into hundreds of round trips.
    venue.full_clean(exclude=["owner"], validate_unique=False)
    return venue


def _code_build(*, venue: Venue, version: int, signing_key: SigningKey, issued_at) -> VenueCode:
    return VenueCode(
        venue=venue,
        version=version,
        vk_encrypted=keystore.vk_encrypt(venue_id=venue.id, version=version, vk=keystore.vk_new()),
        signing_key=signing_key,
        issued_at=issued_at,
    )


@transaction.atomic
def venues_create(venues: list[Venue], *, actor=None, import_batch=None) -> list[Venue]:
    """Insert validated, unsaved venues with version 1 of their codes, two bulk statements."""
    signing_key = signing_key_active()
    issued_at = _now_whole_seconds()
    for venue in venues:
        venue.import_batch = import_batch
    Venue.objects.bulk_create(venues, batch_size=500)
    codes = [_code_build(venue=venue, version=1, signing_key=signing_key, issued_at=issued_at) for venue in venues]
    VenueCode.objects.bulk_create(codes, batch_size=500)
    return venues


def venue_register(*, owner, name_en, name_zh, address_en="", address_zh="", district="", category) -> Venue:
    """Register one venue and issue version 1 of its code, in one transaction.

    Raises ``django.core.exceptions.ValidationError`` for bad fields and
    :class:`~venues.keys.NoActiveSigningKey` when no key can sign.
    """
    venue = venue_build(
        owner=owner,
        name_en=name_en,
        name_zh=name_zh,
        address_en=address_en,
        address_zh=address_zh,
        district=district,
        category=category,
    )
    with transaction.atomic():
        (venue,) = venues_create([venue])
        audit_record(actor=owner, action="venue.register", obj=venue)
    return venue


def _venue_lock(venue: Venue) -> Venue:
    # Row lock: two regenerations at once would both compute the same next version.
    return Venue.objects.select_for_update().get(pk=venue.pk)


def _codes_revoke(venue: Venue, *, keep_version: int | None, now) -> int:
    codes = VenueCode.objects.filter(venue=venue, revoked_at__isnull=True)
    if keep_version is not None:
        codes = codes.exclude(version=keep_version)
    return codes.update(revoked_at=now)


@transaction.atomic
def venue_code_regenerate(*, venue: Venue, actor=None) -> VenueCode:
    """Issue a new code version with a new ``vk`` and revoke every older version."""
    venue = _venue_lock(venue)
    if venue.status != Venue.Status.ACTIVE:
        raise VenueStateError(f"A {venue.status} venue's code cannot be regenerated.")
    signing_key = signing_key_active()
    now = _now_whole_seconds()
    version = venue.current_version + 1
    code = _code_build(venue=venue, version=version, signing_key=signing_key, issued_at=now)
    code.save()
    _codes_revoke(venue, keep_version=version, now=now)
    Venue.objects.filter(pk=venue.pk).update(current_version=F("current_version") + 1, updated_at=now)
    audit_record(actor=actor, action="venue.regenerate", obj=venue, version=version)
    return code


@transaction.atomic
def venue_close(*, venue: Venue, actor=None) -> Venue:
    """Close a venue for good: every code version is revoked."""
    venue = _venue_lock(venue)
    if venue.status == Venue.Status.CLOSED:
        return venue
    now = timezone.now()
    _codes_revoke(venue, keep_version=None, now=now)
    venue.status = Venue.Status.CLOSED
    venue.save(update_fields=["status", "updated_at"])
    audit_record(actor=actor, action="venue.close", obj=venue)
    return venue


@transaction.atomic
def venue_suspend(*, venue: Venue, actor, reason: str = "") -> Venue:
    """Suspend an active venue (staff): every code is revoked until it is reinstated."""
    venue = _venue_lock(venue)
    if venue.status != Venue.Status.ACTIVE:
        raise VenueStateError(f"Only an active venue can be suspended; this one is {venue.status}.")
    _codes_revoke(venue, keep_version=None, now=timezone.now())
    venue.status = Venue.Status.SUSPENDED
    venue.save(update_fields=["status", "updated_at"])
    audit_record(actor=actor, action="venue.suspend", obj=venue, reason=reason)
    return venue


@transaction.atomic
def venue_reinstate(*, venue: Venue, actor, reason: str = "") -> Venue:
    """Reinstate a suspended venue: its current code version (the poster on the wall) is valid again."""
    venue = _venue_lock(venue)
    if venue.status != Venue.Status.SUSPENDED:
        raise VenueStateError(f"Only a suspended venue can be reinstated; this one is {venue.status}.")
    VenueCode.objects.filter(venue=venue, version=venue.current_version).update(revoked_at=None)
    venue.status = Venue.Status.ACTIVE
    venue.save(update_fields=["status", "updated_at"])
    audit_record(actor=actor, action="venue.reinstate", obj=venue, reason=reason)
    return venue
