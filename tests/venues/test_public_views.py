"""The public documents: JWKS, revocations with ETag, and the landing page."""

import pytest

from venues.keys import signing_key_retire, signing_key_rotate, signing_key_withdraw
from venues.services import venue_code_regenerate, venue_suspend

pytestmark = pytest.mark.django_db


def test_jwks_lists_active_and_retired_keys_as_okp(client, signing_key):
    rotated = signing_key_rotate()
    keys = client.get("/.well-known/jwks.json").json()["keys"]
    assert [key["kid"] for key in keys] == [signing_key.kid, rotated.kid]
    assert all(
        set(key) == {"kty", "crv", "x", "kid", "alg", "use"}
        and (key["kty"], key["alg"], key["use"]) == ("OKP", "EdDSA", "sig")
        for key in keys
    )


def test_withdrawn_key_leaves_the_jwks(client, signing_key):
    signing_key_retire(kid=signing_key.kid)
    signing_key_withdraw(kid=signing_key.kid)
    assert client.get("/.well-known/jwks.json").json() == {"keys": []}


def test_key_signing_a_valid_code_cannot_be_withdrawn(venue, signing_key):
    from venues.keys import SigningKeyError

    signing_key_rotate()
    with pytest.raises(SigningKeyError, match="valid venue codes"):
        signing_key_withdraw(kid=signing_key.kid)


def test_revocations_list_old_versions_and_answer_304_while_unchanged(client, venue, owner, admin_user):
    first = client.get("/api/v1/revocations")
    assert first.json() == {"revoked": []}
    assert client.get("/api/v1/revocations", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304

    venue_code_regenerate(venue=venue, actor=owner)
    second = client.get("/api/v1/revocations", HTTP_IF_NONE_MATCH=first["ETag"])
    assert second.status_code == 200
    assert second.json() == {"revoked": [{"sub": str(venue.id), "valid_ver": 2}]}
    assert second["ETag"] != first["ETag"]

    venue_suspend(venue=venue, actor=admin_user)
    assert client.get("/api/v1/revocations").json() == {"revoked": [{"sub": str(venue.id), "valid_ver": None}]}


def test_revocations_errors_use_the_api_format(client):
    response = client.post("/api/v1/revocations")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_landing_page_explains_the_app_in_both_languages(client):
    assert "LeaveHome app" in client.get("/c/").content.decode()
    assert "安心出行" in client.get("/c/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
