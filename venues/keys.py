"""Code signing keys: create, rotate, retire and withdraw (services), and the published set.

Exactly one key is ``active`` and signs new codes (a partial unique constraint keeps it so).
Rotating makes a new active key and retires the old one; a retired key signs nothing new but
stays in the JWKS, because posters signed by it are still on walls. Withdrawing a key takes it
out of the JWKS; it is refused while a valid code still depends on the key.
"""

import logging
import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from leavehome.audit import audit_record
from leavehome.errors import ServiceError
from venues import keystore
from venues.models import SigningKey, Venue
from venues.signing import public_jwk

logger = logging.getLogger(__name__)


class NoActiveSigningKey(ServiceError):
    """No key can sign codes; an operator must run ``manage.py signing_key_create`` (logged when raised)."""

    code = "no_signing_key"
    status = 503

    def __init__(self):
        super().__init__(_("Venue codes cannot be issued right now. Please try again later."))


class SigningKeyError(ServiceError):
    """A key operation that is not allowed in the key's present state."""

    code = "signing_key_state"
    status = 409


def _new_kid() -> str:
    return f"{timezone.now():%Y-%m-%d}-{secrets.token_hex(3)}"


def signing_key_active() -> SigningKey:
    """The key that signs new codes; raises :class:`NoActiveSigningKey` when there is none."""
    key = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).first()
    if key is None:
        logger.error("No active signing key: run `manage.py signing_key_create` (see docs/operations.md).")
        raise NoActiveSigningKey()
    return key


def _signing_key_insert(*, kid: str | None, private_key: Ed25519PrivateKey | None) -> SigningKey:
    kid = kid or _new_kid()
    private_key = private_key or Ed25519PrivateKey.generate()
    return SigningKey.objects.create(
        kid=kid,
        public_key=private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        private_key_encrypted=keystore.private_key_encrypt(kid=kid, private_key=private_key),
        status=SigningKey.Status.ACTIVE,
    )


@transaction.atomic
def signing_key_create(*, kid: str | None = None, private_key: Ed25519PrivateKey | None = None, actor=None):
    """Create the first active key. Refused when one is active already (rotate instead)."""
    if SigningKey.objects.select_for_update().filter(status=SigningKey.Status.ACTIVE).exists():
        raise SigningKeyError("A key is active already; use signing_key_rotate to replace it.")
    if kid and SigningKey.objects.filter(kid=kid).exists():
        raise SigningKeyError(f"A key with kid {kid!r} exists already.")
    key = _signing_key_insert(kid=kid, private_key=private_key)
    audit_record(actor=actor, action="signing_key.create", obj=key)
    return key


@transaction.atomic
def signing_key_rotate(*, kid: str | None = None, actor=None) -> SigningKey:
    """Retire the active key (it stays published) and make a new one active."""
    # Lock the active row so two rotations cannot both retire it and both insert.
    old = SigningKey.objects.select_for_update().filter(status=SigningKey.Status.ACTIVE).first()
    if old is not None:
        old.status, old.retired_at = SigningKey.Status.RETIRED, timezone.now()
        old.save(update_fields=["status", "retired_at"])
    key = _signing_key_insert(kid=kid, private_key=None)
    audit_record(actor=actor, action="signing_key.rotate", obj=key, retired=old.kid if old else None)
    return key


@transaction.atomic
def signing_key_retire(*, kid: str, actor=None) -> SigningKey:
    """Stop a key signing new codes; it stays published. New codes fail until one is created."""
    key = SigningKey.objects.select_for_update().get(kid=kid)
    if key.status != SigningKey.Status.ACTIVE:
        raise SigningKeyError(f"Key {kid} is {key.status}, not active.")
    key.status, key.retired_at = SigningKey.Status.RETIRED, timezone.now()
    key.save(update_fields=["status", "retired_at"])
    audit_record(actor=actor, action="signing_key.retire", obj=key)
    return key


@transaction.atomic
def signing_key_withdraw(*, kid: str, actor=None) -> SigningKey:
    """Unpublish a retired key. Refused while an active venue's current code is signed by it."""
    key = SigningKey.objects.select_for_update().get(kid=kid)
    if key.status != SigningKey.Status.RETIRED:
        raise SigningKeyError(f"Key {kid} is {key.status}; only a retired key can be withdrawn.")
    in_use = Venue.objects.filter(
        status=Venue.Status.ACTIVE, codes__signing_key=key, codes__revoked_at__isnull=True
    ).count()
    if in_use:
        raise SigningKeyError(f"{in_use} valid venue codes are signed by {kid}; regenerate them first.")
    key.status = SigningKey.Status.WITHDRAWN
    key.save(update_fields=["status"])
    audit_record(actor=actor, action="signing_key.withdraw", obj=key)
    return key


def _signing_keys_published():
    return SigningKey.objects.filter(status__in=[SigningKey.Status.ACTIVE, SigningKey.Status.RETIRED]).order_by(
        "created_at", "kid"
    )


def jwks_document() -> dict:
    """The published key set (RFC 7517): every active and retired key."""
    return {"keys": [public_jwk(kid=key.kid, public_key=bytes(key.public_key)) for key in _signing_keys_published()]}


def public_keys_published() -> dict[str, Ed25519PublicKey]:
    """The published key set as ``kid`` → public key, for verifying codes as a phone does."""
    return {key.kid: Ed25519PublicKey.from_public_bytes(bytes(key.public_key)) for key in _signing_keys_published()}
