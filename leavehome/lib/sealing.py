"""Secrets at rest: AES-256-GCM with the row they belong to as associated data.

A sealed value is ``0x01 || nonce (12 bytes) || ciphertext+tag``; the leading format byte
leaves room for another scheme later. The associated data binds a value to its row (a venue
and code version, a key id, a device and channel kind), so a sealed value copied onto
another row does not open. Callers choose and hold the keys (venues/keystore.py,
notifications/push/sealing.py).
"""

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_FORMAT = b"\x01"
_NONCE_BYTES = 12


class SealedValueInvalid(ValueError):
    """A sealed value that does not open: wrong key, wrong row, unknown format, or corrupted."""


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return _FORMAT + nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def unseal(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    sealed = bytes(sealed)
    if sealed[:1] != _FORMAT:
        raise SealedValueInvalid("unknown sealed format")
    nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, associated_data)
    except InvalidTag as error:
        raise SealedValueInvalid("sealed value does not open under this key and row") from error
