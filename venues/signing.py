"""Venue codes: JWS Compact (RFC 7515) signed with Ed25519 (``"alg":"EdDSA"``, RFC 8037).

PROTOCOL §1 fixes the protected header and the claims; §5 has a vector that this module must
reproduce byte for byte. That is why the JSON is built by hand here instead of by a JOSE
library: the header's key order, the claims' order, compact separators and raw UTF-8
(``ensure_ascii=False``) are all part of the bytes that get signed.

The JWS is never stored. Ed25519 signatures are deterministic (RFC 8032), so signing the
stored claims of a code version again with the same key yields the same code.
"""

import json
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from leavehome.lib.b64u import b64u_decode, b64u_encode

ALGORITHM = "EdDSA"
TYPE = "lhs-venue+jwt"


class InvalidCode(ValueError):
    """A venue code that is malformed, signed by an unknown key, or whose signature fails."""


def _json(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def venue_claims(*, iss, sub, ver, iat, cat, name_en, name_zh, vk: bytes, addr_en="", addr_zh="") -> dict:
    """The payload of a venue code, its claims in PROTOCOL §1 order (the order is signed)."""
    claims = {
        "iss": iss,
        "sub": str(sub),
        "ver": int(ver),
        "iat": int(iat),
        "cat": cat,
        "name": {"en": name_en, "zh": name_zh},
        "vk": b64u_encode(vk),
    }
    if addr_en or addr_zh:
        claims["addr"] = {"en": addr_en, "zh": addr_zh}
    return claims


def jws_sign(claims: Mapping, *, private_key: Ed25519PrivateKey, kid: str) -> str:
    """Sign ``claims`` as a compact JWS with the PROTOCOL §1 protected header."""
    header = {"alg": ALGORITHM, "kid": kid, "typ": TYPE}
    signing_input = f"{b64u_encode(_json(header))}.{b64u_encode(_json(dict(claims)))}"
    signature = private_key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64u_encode(signature)}"


def jws_verify(jws: str, *, public_keys: Mapping[str, Ed25519PublicKey]) -> dict:
    """Check a venue code's header and signature and return its claims.

    ``public_keys`` maps ``kid`` to key (the published key set). Raises :class:`InvalidCode`
    for a malformed code, a wrong ``alg``/``typ``, an unknown ``kid`` or a bad signature.
    Checking ``iss`` and revocation is the caller's business (they need settings and the DB).
    """
    try:
        header_b64, payload_b64, signature_b64 = jws.split(".")
        header = json.loads(b64u_decode(header_b64))
        signature = b64u_decode(signature_b64)
    except ValueError as error:
        raise InvalidCode("malformed code") from error
    if not isinstance(header, dict) or header.get("alg") != ALGORITHM or header.get("typ") != TYPE:
        raise InvalidCode("wrong algorithm or type")
    public_key = public_keys.get(header.get("kid"))
    if public_key is None:
        raise InvalidCode("unknown signing key")
    try:
        public_key.verify(signature, f"{header_b64}.{payload_b64}".encode("ascii"))
    except InvalidSignature as error:
        raise InvalidCode("bad signature") from error
    try:
        claims = json.loads(b64u_decode(payload_b64))
    except ValueError as error:
        raise InvalidCode("malformed payload") from error
    if not isinstance(claims, dict):
        raise InvalidCode("malformed payload")
    return claims


def public_jwk(*, kid: str, public_key: bytes) -> dict:
    """An RFC 7517 / RFC 8037 OKP JSON Web Key for a raw 32-byte Ed25519 public key."""
    return {"kty": "OKP", "crv": "Ed25519", "x": b64u_encode(public_key), "kid": kid, "alg": ALGORITHM, "use": "sig"}
