"""PROTOCOL §5 venue code vector, reproduced and verified independently."""

import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from leavehome.lib.b64u import b64u_decode, b64u_encode
from venues.signing import InvalidCode, jws_sign, jws_verify, public_jwk, venue_claims

SEED = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"
PUBLIC_X = "ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ"
KID = "test-2026-1"
VECTOR = (
    "eyJhbGciOiJFZERTQSIsImtpZCI6InRlc3QtMjAyNi0xIiwidHlwIjoibGhzLXZlbnVlK2p3dCJ9."
    "eyJpc3MiOiJodHRwczovL2xlYXZlaG9tZS5leGFtcGxlIiwic3ViIjoiM2YyYjhjMWUtNWQ0YS00ZTdiLTljMmQtMWEwYjllOGY3ZDZjIiwidmVy"
    "IjoxLCJpYXQiOjE3NjM4NzA0MDAsImNhdCI6ImNhdGVyaW5nIiwibmFtZSI6eyJlbiI6Ikx1Y2t5IE5vb2RsZSBIb3VzZSIsInpoIjoi5aW96YGL"
    "6bq15a62In0sInZrIjoiQUFFQ0F3UUZCZ2NJQ1FvTERBME9EdyJ9."
    "Asyg6ArLPfkq7xtTAv-ngEgn8V9MHsT2O0mY1p1Ep4Jp28tJawea3xl5oUDlS6TsnFRteNX7Jom4bCDRbC1SBg"
)


@pytest.fixture
def private_key():
    return Ed25519PrivateKey.from_private_bytes(b64u_decode(SEED))


def _vector_claims():
    return venue_claims(
        iss="https://leavehome.example",
        sub="3f2b8c1e-5d4a-4e7b-9c2d-1a0b9e8f7d6c",
        ver=1,
        iat=1763870400,
        cat="catering",
        name_en="Lucky Noodle House",
        name_zh="好運麵家",
        vk=bytes(range(16)),
    )


def _tampered_vector():
    header, payload, signature = VECTOR.split(".")
    claims = json.loads(b64u_decode(payload))
    claims["ver"] = 2
    tampered = b64u_encode(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{header}.{tampered}.{signature}"


def test_seed_gives_the_published_public_key(private_key):
    jwk = public_jwk(kid=KID, public_key=private_key.public_key().public_bytes_raw())
    assert jwk == {"kty": "OKP", "crv": "Ed25519", "x": PUBLIC_X, "kid": KID, "alg": "EdDSA", "use": "sig"}


def test_signing_reproduces_the_vector_byte_for_byte(private_key):
    assert jws_sign(_vector_claims(), private_key=private_key, kid=KID) == VECTOR


def test_vector_verifies_and_yields_its_claims(private_key):
    claims = jws_verify(VECTOR, public_keys={KID: private_key.public_key()})
    assert claims["name"] == {"en": "Lucky Noodle House", "zh": "好運麵家"}
    assert b64u_decode(claims["vk"]) == bytes(range(16))


def test_vector_verifies_with_pyjwt_against_the_jwk(private_key):
    jwk = jwt.PyJWK({"kty": "OKP", "crv": "Ed25519", "x": PUBLIC_X, "kid": KID, "alg": "EdDSA", "use": "sig"})
    claims = jwt.decode(VECTOR, jwk.key, algorithms=["EdDSA"], options={"verify_aud": False})
    assert claims["sub"] == "3f2b8c1e-5d4a-4e7b-9c2d-1a0b9e8f7d6c"
    assert jwt.get_unverified_header(VECTOR)["typ"] == "lhs-venue+jwt"


def test_tampered_vector_is_rejected(private_key):
    tampered = _tampered_vector()
    with pytest.raises(InvalidCode, match="bad signature"):
        jws_verify(tampered, public_keys={KID: private_key.public_key()})
    jwk = jwt.PyJWK({"kty": "OKP", "crv": "Ed25519", "x": PUBLIC_X, "kid": KID, "alg": "EdDSA"})
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tampered, jwk.key, algorithms=["EdDSA"])


def test_code_signed_by_an_unknown_key_is_rejected(private_key):
    stranger = Ed25519PrivateKey.generate()
    forged = jws_sign(_vector_claims(), private_key=stranger, kid="not-published")
    with pytest.raises(InvalidCode, match="unknown signing key"):
        jws_verify(forged, public_keys={KID: private_key.public_key()})
    # The right kid with the wrong key fails on the signature instead.
    impostor = jws_sign(_vector_claims(), private_key=stranger, kid=KID)
    with pytest.raises(InvalidCode, match="bad signature"):
        jws_verify(impostor, public_keys={KID: private_key.public_key()})


def test_address_claim_follows_vk_only_when_given():
    claims = venue_claims(
        iss="i", sub="s", ver=1, iat=0, cat="retail", name_en="a", name_zh="b", vk=b"\0" * 16, addr_en="x"
    )
    assert list(claims) == ["iss", "sub", "ver", "iat", "cat", "name", "vk", "addr"]
    assert "addr" not in _vector_claims()


@pytest.mark.parametrize("garbage", ["", "a.b", "a.b.c.d", "!!.??.**"])
def test_malformed_codes_are_rejected(garbage, private_key):
    with pytest.raises(InvalidCode):
        jws_verify(garbage, public_keys={KID: private_key.public_key()})


@settings(max_examples=50, deadline=None)
@given(
    name_en=st.text(min_size=1, max_size=60),
    name_zh=st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=20),
    ver=st.integers(min_value=1, max_value=10_000),
    vk=st.binary(min_size=16, max_size=16),
)
def test_any_venue_claims_round_trip_through_pyjwt(name_en, name_zh, ver, vk):
    private_key = Ed25519PrivateKey.from_private_bytes(b64u_decode(SEED))
    claims = venue_claims(
        iss="https://leavehome.example", sub="s", ver=ver, iat=1, cat="retail", name_en=name_en, name_zh=name_zh, vk=vk
    )
    jws = jws_sign(claims, private_key=private_key, kid=KID)
    jwk = jwt.PyJWK({"kty": "OKP", "crv": "Ed25519", "x": PUBLIC_X, "kid": KID, "alg": "EdDSA"})
    assert jwt.decode(jws, jwk.key, algorithms=["EdDSA"]) == claims == jws_verify(jws, public_keys={KID: jwk.key})
