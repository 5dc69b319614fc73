"""Reading a venue code offline: the QR text, its Ed25519 JWS, the key set and revocations."""

import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.phone.derivation import b64u_decode


class CodeRejected(ValueError):
    """The text is not a valid, unrevoked LeaveHome venue code."""


@dataclass(frozen=True)
class VenueCode:
    sub: str
    ver: int
    vk: bytes
    name: dict
    category: str
    claims: dict
    jws: str  # as scanned: a confirmed case uploads it with the visit's times


def _json_part(part: str) -> dict:
    try:
        value = json.loads(b64u_decode(part))
    except ValueError as error:
        raise CodeRejected(f"bad JWS part: {error}") from error
    if not isinstance(value, dict):
        raise CodeRejected("JWS part is not an object")
    return value


def verify_venue_code(text: str, *, prefix: str, issuer: str, jwks: dict, revocations: dict) -> VenueCode:
    """Accept ``text`` (the QR content) only as the protocol says; raise CodeRejected otherwise."""
    if not text.startswith(prefix):
        raise CodeRejected("not a LeaveHome code")
    parts = text[len(prefix) :].split(".")
    if len(parts) != 3:
        raise CodeRejected("not a JWS compact serialization")
    header, claims = _json_part(parts[0]), _json_part(parts[1])
    if header.get("alg") != "EdDSA" or header.get("typ") != "lhs-venue+jwt":
        raise CodeRejected("wrong alg or typ")
    keys = [key for key in jwks.get("keys", []) if key.get("kid") == header.get("kid")]
    if len(keys) != 1 or keys[0].get("kty") != "OKP" or keys[0].get("crv") != "Ed25519":
        raise CodeRejected("unknown signing key")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(b64u_decode(keys[0]["x"]))
        public_key.verify(b64u_decode(parts[2]), f"{parts[0]}.{parts[1]}".encode("ascii"))
    except (InvalidSignature, ValueError) as error:
        raise CodeRejected("bad signature") from error
    if claims.get("iss") != issuer:
        raise CodeRejected("wrong issuer")
    sub, ver = claims.get("sub"), claims.get("ver")
    if not isinstance(sub, str) or not isinstance(ver, int) or ver < 1:
        raise CodeRejected("bad sub or ver")
    for entry in revocations.get("revoked", []):
        if entry.get("sub") == sub and entry.get("valid_ver") != ver:
            raise CodeRejected("revoked")
    try:
        vk = b64u_decode(claims["vk"])
    except (KeyError, ValueError) as error:
        raise CodeRejected("bad vk") from error
    if len(vk) != 16:
        raise CodeRejected("bad vk length")
    return VenueCode(
        sub=sub,
        ver=ver,
        vk=vk,
        name=claims.get("name", {}),
        category=claims.get("cat", ""),
        claims=claims,
        jws=text[len(prefix) :],
    )
