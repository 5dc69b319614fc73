"""Sealing push channel addresses at rest.

A push address (Web Push endpoint and keys, FCM or APNs token) lets whoever holds it wake
the phone, and a Web Push endpoint is a stable identifier of a browser. So it is stored
only sealed (leavehome/lib/sealing.py: AES-256-GCM), under a key derived from KEY_ENCRYPTION_KEY with HKDF (a
separate key per purpose, so this key never encrypts anything else), with the device id
and kind as associated data: a sealed address copied onto another row does not open.

Uniqueness needs a stable value, so the address is also stored as a keyed hash (HMAC with
another derived key): equal addresses compare equal, and the hash alone reveals nothing.
"""

import hashlib
import hmac
import json
from functools import cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from leavehome.lib.b64u import b64u_decode
from leavehome.lib.sealing import seal, unseal


@cache
def _derived_key(purpose: bytes, master: str) -> bytes:
    master_bytes = b64u_decode(master, padded=True)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"leavehome push " + purpose).derive(master_bytes)


def _key(purpose: bytes) -> bytes:
    # The master key is read on every call (not cached alone) so tests overriding it work.
    return _derived_key(purpose, settings.KEY_ENCRYPTION_KEY)


def _associated_data(device_id, kind: str) -> bytes:
    return f"{device_id}:{kind}".encode()


def address_seal(*, device_id, kind: str, address: dict) -> bytes:
    """The address (a small JSON object) encrypted for storage on that device's channel."""
    plaintext = json.dumps(address, separators=(",", ":"), sort_keys=True).encode()
    return seal(_key(b"channel seal v1"), plaintext, _associated_data(device_id, kind))


def address_open(*, device_id, kind: str, sealed: bytes) -> dict:
    """The address sealed by :func:`address_seal` for that device and kind."""
    return json.loads(unseal(_key(b"channel seal v1"), sealed, _associated_data(device_id, kind)))


def address_hash(*, kind: str, address_id: str) -> bytes:
    """A keyed hash of the address's identifying part (endpoint or token), for uniqueness."""
    return hmac.new(_key(b"address hash v1"), f"{kind}:{address_id}".encode(), hashlib.sha256).digest()
