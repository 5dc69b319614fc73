"""PROTOCOL §5 test vectors, through the reference phone client and through the server's derivation.

Both are checked against the same literal table, so each is held to the protocol rather
than to the other.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leavehome.lib.b64u import b64u_encode
from notifications import tokens as server
from tests import phone

HK = "Asia/Hong_Kong"
VK = phone.b64u_decode("AAECAwQFBgcICQoLDA0ODw")
OTHER_VK = phone.b64u_decode("EBESExQVFhcYGRobHB0eHw")
NOV_23, NOV_24 = dt.date(2026, 11, 23), dt.date(2026, 11, 24)
SLOT_VECTORS = {
    1994896: "vCQvEd3xG1n-vu31fVbl8g",
    1994897: "Amvd6s2a0Z6tS7-AU-czsQ",
    1994898: "aDyri0l_rRkO0OXteQ0Quw",
    1994899: "8zh9oOjfnroVby1zuo0_TA",
    1994900: "r0oc9RU1Fen_64_LQF5ghg",
    1994943: "h6QgWELMSiouuW5migWi7g",
    1994944: "dml_un77Q8qRl6j7cbAuxQ",
    1994945: "mRopJPpv765ACqzFHFGcKQ",
}
DAY_VECTORS = {NOV_23: "2K8wn5KqYny4C-4HkrsnRw", NOV_24: "gY8DGgSRURiXhkiqXiXmjA"}
JWKS = {
    "keys": [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ",
            "kid": "test-2026-1",
            "alg": "EdDSA",
            "use": "sig",
        }
    ]
}
JWS = (
    "eyJhbGciOiJFZERTQSIsImtpZCI6InRlc3QtMjAyNi0xIiwidHlwIjoibGhzLXZlbnVlK2p3dCJ9."
    "eyJpc3MiOiJodHRwczovL2xlYXZlaG9tZS5leGFtcGxlIiwic3ViIjoiM2YyYjhjMWUtNWQ0YS00ZTdiLTljMmQtMWEwYjllOGY3ZDZjIiwidmVy"
    "IjoxLCJpYXQiOjE3NjM4NzA0MDAsImNhdCI6ImNhdGVyaW5nIiwibmFtZSI6eyJlbiI6Ikx1Y2t5IE5vb2RsZSBIb3VzZSIsInpoIjoi5aW96YGL"
    "6bq15a62In0sInZrIjoiQUFFQ0F3UUZCZ2NJQ1FvTERBME9EdyJ9."
    "Asyg6ArLPfkq7xtTAv-ngEgn8V9MHsT2O0mY1p1Ep4Jp28tJawea3xl5oUDlS6TsnFRteNX7Jom4bCDRbC1SBg"
)
PREFIX = "https://leavehome.example/c/#"


def _local(text):
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(HK)).timestamp())


@pytest.mark.parametrize(("slot", "expected"), SLOT_VECTORS.items())
def test_slot_token_vectors_in_client_and_server(slot, expected):
    assert phone.b64u_encode(phone.slot_token(VK, slot)) == expected
    assert b64u_encode(server.slot_token(VK, slot)) == expected


@pytest.mark.parametrize(("date", "expected"), DAY_VECTORS.items())
def test_day_token_vectors_in_client_and_server(date, expected):
    assert phone.b64u_encode(phone.day_token(VK, date)) == expected
    assert b64u_encode(server.day_token(VK, date)) == expected


def test_visit_times_match_the_vector_timestamps():
    assert _local("2026-11-23T12:05") == 1795406700
    assert _local("2026-11-23T12:50") == 1795409400


def _client_visit(t_in, t_out):
    return {
        date: {phone.b64u_encode(t) for t in tokens} for date, tokens in phone.visit_tokens(VK, t_in, t_out, HK).items()
    }


def _server_visit(t_in, t_out):
    slot_tokens, day_tokens = server.interval_tokens(VK, t_in, t_out, ZoneInfo(HK))
    days = {}
    for date, token in slot_tokens + day_tokens:
        days.setdefault(date, set()).add(b64u_encode(token))
    return days


@pytest.mark.parametrize("derive", [_client_visit, _server_visit], ids=["client", "server"])
def test_first_visit_covers_four_slots_and_its_day(derive):
    days = derive(1795406700, 1795409400)
    expected = {SLOT_VECTORS[slot] for slot in range(1994896, 1994900)} | {DAY_VECTORS[NOV_23]}
    assert days == {NOV_23: expected}


@pytest.mark.parametrize("derive", [_client_visit, _server_visit], ids=["client", "server"])
def test_visit_across_midnight_covers_both_local_dates(derive):
    days = derive(_local("2026-11-23T23:50"), _local("2026-11-24T00:20"))
    assert days == {
        NOV_23: {SLOT_VECTORS[1994943], DAY_VECTORS[NOV_23]},
        NOV_24: {SLOT_VECTORS[1994944], SLOT_VECTORS[1994945], DAY_VECTORS[NOV_24]},
    }


@pytest.mark.parametrize("derive", [_client_visit, _server_visit], ids=["client", "server"])
def test_half_open_end_covers_one_slot(derive):
    days = derive(_local("2026-11-23T12:30"), _local("2026-11-23T12:45"))
    assert days == {NOV_23: {SLOT_VECTORS[1994898], DAY_VECTORS[NOV_23]}}


def test_case_window_shares_two_slots_with_the_first_visit_and_none_across_venues():
    visit = _client_visit(1795406700, 1795409400)[NOV_23]
    window = _server_visit(_local("2026-11-23T12:40"), _local("2026-11-23T13:10"))[NOV_23]
    assert window - {DAY_VECTORS[NOV_23]} == {SLOT_VECTORS[s] for s in (1994898, 1994899, 1994900)}
    assert visit & window == {SLOT_VECTORS[1994898], SLOT_VECTORS[1994899], DAY_VECTORS[NOV_23]}
    other = phone.b64u_encode(phone.slot_token(OTHER_VK, 1994898))
    assert other == "-pH3XMWqyGRP4QGk-jupzg"
    assert b64u_encode(server.slot_token(OTHER_VK, 1994898)) == other


def test_client_accepts_the_vector_venue_code():
    code = phone.verify_venue_code(
        PREFIX + JWS, prefix=PREFIX, issuer="https://leavehome.example", jwks=JWKS, revocations={"revoked": []}
    )
    assert code.sub == "3f2b8c1e-5d4a-4e7b-9c2d-1a0b9e8f7d6c"
    assert code.ver == 1
    assert code.vk == VK
    assert code.name == {"en": "Lucky Noodle House", "zh": "好運麵家"}


def test_client_rejects_the_code_with_ver_changed_and_signature_kept():
    header, payload, signature = JWS.split(".")
    claims = phone.b64u_decode(payload).replace(b'"ver":1', b'"ver":2')
    forged = ".".join([header, phone.b64u_encode(claims), signature])
    with pytest.raises(phone.CodeRejected, match="signature"):
        phone.verify_venue_code(
            PREFIX + forged, prefix=PREFIX, issuer="https://leavehome.example", jwks=JWKS, revocations={"revoked": []}
        )


@pytest.mark.parametrize(
    ("revoked", "accepted"),
    [
        ([{"sub": "3f2b8c1e-5d4a-4e7b-9c2d-1a0b9e8f7d6c", "valid_ver": 2}], False),
        ([{"sub": "3f2b8c1e-5d4a-4e7b-9c2d-1a0b9e8f7d6c", "valid_ver": None}], False),
        ([{"sub": "3f2b8c1e-5d4a-4e7b-9c2d-1a0b9e8f7d6c", "valid_ver": 1}], True),
        ([{"sub": "00000000-0000-0000-0000-000000000000", "valid_ver": None}], True),
    ],
)
def test_client_applies_the_revocation_list(revoked, accepted):
    def verify():
        return phone.verify_venue_code(
            PREFIX + JWS, prefix=PREFIX, issuer="https://leavehome.example", jwks=JWKS, revocations={"revoked": revoked}
        )

    if accepted:
        assert verify().ver == 1
    else:
        with pytest.raises(phone.CodeRejected, match="revoked"):
            verify()


@pytest.mark.parametrize("text", ["AAECAwQFBgcICQoLDA0ODw==", "AAECAwQFBgcICQoLDA0ODx", "AAECAwQFBgcICQoLDA0OD/", "A"])
def test_client_b64u_is_strict(text):
    with pytest.raises(ValueError):
        phone.b64u_decode(text)


@given(
    vk=st.binary(min_size=16, max_size=16),
    t_in=st.integers(min_value=1_700_000_000, max_value=1_900_000_000),
    length=st.integers(min_value=1, max_value=43_200),
    zone=st.sampled_from([HK, "UTC", "America/New_York", "Asia/Kathmandu"]),
)
@settings(max_examples=200, deadline=None)
def test_client_and_server_derive_the_same_tokens_for_any_visit(vk, t_in, length, zone):
    t_out = t_in + length
    client = {date: set(tokens) for date, tokens in phone.visit_tokens(vk, t_in, t_out, zone).items()}
    slot_tokens, day_tokens = server.interval_tokens(vk, t_in, t_out, ZoneInfo(zone))
    ours = {}
    for date, token in slot_tokens + day_tokens:
        ours.setdefault(date, set()).add(token)
    assert client == ours
