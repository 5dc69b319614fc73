"""Codes the app issues verify with an independent JOSE library against the published JWKS."""

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from leavehome.lib.b64u import b64u_decode
from venues.codes import code_claims, code_jws, code_qr_text
from venues.keys import signing_key_rotate
from venues.models import VenueCode
from venues.services import venue_code_regenerate
from venues.signing import jws_sign

pytestmark = pytest.mark.django_db


def _verify_with_published_jwks(client, jws):
    jwks = client.get("/.well-known/jwks.json").json()
    kid = jwt.get_unverified_header(jws)["kid"]
    (jwk,) = [key for key in jwks["keys"] if key["kid"] == kid]
    return jwt.decode(jws, jwt.PyJWK(jwk).key, algorithms=["EdDSA"], issuer=settings.SITE_URL)


def test_issued_code_verifies_with_pyjwt_against_published_jwks(client, venue):
    code = VenueCode.objects.get(venue=venue)
    jws = code_jws(code)
    claims = _verify_with_published_jwks(client, jws)
    assert list(claims) == ["iss", "sub", "ver", "iat", "cat", "name", "vk", "addr"]
    assert claims["sub"] == str(venue.id) and claims["ver"] == 1
    assert claims["name"] == {"en": "Lucky Noodle House", "zh": "好運麵家"}
    assert len(b64u_decode(claims["vk"])) == 16
    assert jwt.get_unverified_header(jws) == {"alg": "EdDSA", "kid": code.signing_key_id, "typ": "lhs-venue+jwt"}


def test_code_is_re_signed_identically(venue):
    code = VenueCode.objects.get(venue=venue)
    assert code_jws(code) == code_jws(VenueCode.objects.get(pk=code.pk))
    assert code_qr_text(code) == f"{settings.SITE_URL}/c/#{code_jws(code)}"


def test_codes_of_a_retired_key_still_verify_after_rotation(client, venue, owner):
    old = VenueCode.objects.get(venue=venue)
    signing_key_rotate()
    new = venue_code_regenerate(venue=venue, actor=owner)
    assert new.signing_key_id != old.signing_key_id
    assert _verify_with_published_jwks(client, code_jws(old))["ver"] == 1
    assert _verify_with_published_jwks(client, code_jws(new))["ver"] == 2


def test_code_signed_by_an_unknown_key_finds_no_key_in_the_published_jwks(client, venue):
    claims = code_claims(VenueCode.objects.get(venue=venue))
    forged = jws_sign(claims, private_key=Ed25519PrivateKey.generate(), kid="x")
    key_set = jwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").json())
    with pytest.raises(KeyError):
        key_set[jwt.get_unverified_header(forged)["kid"]]
    # Claiming a published kid does not help a forger: the signature fails under that key.
    impostor = jws_sign(claims, private_key=Ed25519PrivateKey.generate(), kid=venue.codes.get().signing_key_id)
    with pytest.raises(jwt.InvalidSignatureError):
        _verify_with_published_jwks(client, impostor)
