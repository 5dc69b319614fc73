"""Secrets at rest: venue keys (``vk``) and the private halves of code signing keys.

Both are sealed with AES-256-GCM under a key from settings, each under its own key so that
they can be held by different processes:

- ``vk`` under ``TRACING_KEY``, which only the workers that build exposures need. The venue
  id and code version are the associated data, so a sealed ``vk`` copied onto another row
  does not open: a database copy alone cannot link visit tokens to venues.
- signing keys under ``KEY_ENCRYPTION_KEY``, with the ``kid`` as associated data.

The format is leavehome/lib/sealing.py's.
"""

import functools
import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from leavehome.lib.b64u import b64u_decode
from leavehome.lib.sealing import SealedValueInvalid, seal, unseal

VK_BYTES = 16


class KeystoreError(SealedValueInvalid):
    """A sealed value that does not open: wrong key, wrong row, or corrupted."""


@functools.lru_cache(maxsize=8)
def _key_bytes(encoded_key: str) -> bytes:
    try:
        key = b64u_decode(encoded_key, padded=True)
    except ValueError as error:
        raise ImproperlyConfigured("TRACING_KEY and KEY_ENCRYPTION_KEY must be base64url") from error
    if len(key) != 32:
        raise ImproperlyConfigured("TRACING_KEY and KEY_ENCRYPTION_KEY must decode to 32 bytes")
    return key


def _seal(encoded_key: str, plaintext: bytes, associated_data: bytes) -> bytes:
    return seal(_key_bytes(encoded_key), plaintext, associated_data)


def _open(encoded_key: str, sealed: bytes, associated_data: bytes) -> bytes:
    try:
        return unseal(_key_bytes(encoded_key), sealed, associated_data)
    except SealedValueInvalid as error:
        raise KeystoreError(str(error)) from error


def _vk_associated_data(venue_id, version: int) -> bytes:
    return f"lhs1:vk:{venue_id}:{int(version)}".encode("ascii")


def vk_new() -> bytes:
    """16 fresh random bytes: a venue key (PROTOCOL §1 ``vk``)."""
    return secrets.token_bytes(VK_BYTES)


def vk_encrypt(*, venue_id, version: int, vk: bytes) -> bytes:
    """Seal a venue key under TRACING_KEY, bound to its venue and code version."""
    return _seal(settings.TRACING_KEY, vk, _vk_associated_data(venue_id, version))


def vk_decrypt(code) -> bytes:
    """The 16-byte ``vk`` of a :class:`~venues.models.VenueCode` (for exposure builders)."""
    return _open(settings.TRACING_KEY, code.vk_encrypted, _vk_associated_data(code.venue_id, code.version))


def private_key_encrypt(*, kid: str, private_key: Ed25519PrivateKey) -> bytes:
    """Seal the 32-byte Ed25519 seed under KEY_ENCRYPTION_KEY, bound to ``kid``."""
    seed = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return _seal(settings.KEY_ENCRYPTION_KEY, seed, kid.encode("utf-8"))


def private_key_load(signing_key) -> Ed25519PrivateKey:
    """The private key of a :class:`~venues.models.SigningKey`, opened once per process."""
    return _private_key_cached(settings.KEY_ENCRYPTION_KEY, signing_key.kid, bytes(signing_key.private_key_encrypted))


# Opening a key costs little, but a ZIP of 500 posters signs 500 codes with the same one.
@functools.lru_cache(maxsize=16)
def _private_key_cached(encoded_key: str, kid: str, sealed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_open(encoded_key, sealed, kid.encode("utf-8")))
