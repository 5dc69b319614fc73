"""POST /api/v1/case-uploads (PROTOCOL §6): every visit verified, all or nothing, one-time codes."""

import datetime as dt
import json
import logging
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client, override_settings
from django.utils import timezone

from leavehome.models import AuditEntry
from notifications.case_uploads import case_upload_code_issue, case_upload_code_revoke, upload_code_normalize
from notifications.models import Case, CaseUploadCode, CaseVisit
from tests.phone.server import database_contents, official, venue_make, venue_qr_text
from venues import keystore
from venues.codes import code_claims, qr_prefix
from venues.keystore import vk_new
from venues.models import VenueCode
from venues.services import venue_code_regenerate
from venues.signing import b64u_encode, jws_sign

pytestmark = pytest.mark.django_db
URL = "/api/v1/case-uploads"


@pytest.fixture(autouse=True)
def _throttle_counters():
    cache.clear()


@pytest.fixture
def case():
    return Case.objects.create(reference="HK-U1", confirmed_on=timezone.localdate())


@pytest.fixture
def code(case):
    return case_upload_code_issue(case=case, actor=official())[1]


@pytest.fixture
def venue():
    return venue_make(name_en="Lucky Noodle House", name_zh="好運麵家", district="yau-tsim-mong")


def jws_of(venue) -> str:
    return venue_qr_text(venue).removeprefix(qr_prefix())


def now() -> int:
    return int(time.time())


def visit(jws, *, hours_ago=5, minutes=45):
    t_in = now() - hours_ago * 3600
    return {"venue_code": jws, "t_in": t_in, "t_out": t_in + minutes * 60}


def post(body, client=None, raw=None, **extra):
    client = client or Client()
    data = raw if raw is not None else json.dumps(body)
    return client.post(URL, data, content_type="application/json", **extra)


def signed(venue, *, private_key=None, kid=None, **changes) -> str:
    """The venue's code with ``changes`` to its claims, signed by the real key unless told otherwise."""
    code = VenueCode.objects.select_related("venue", "signing_key").get(venue=venue, version=venue.current_version)
    claims = {**code_claims(code), **changes}
    return jws_sign(
        claims,
        private_key=private_key or keystore.private_key_load(code.signing_key),
        kid=kid or code.signing_key.kid,
    )


# --- the good path ---------------------------------------------------------------------------


def test_an_upload_becomes_proposed_visits_of_the_case(case, code, venue):
    other = venue_make()
    body = {"code": code, "visits": [visit(jws_of(venue), hours_ago=30), visit(jws_of(other), hours_ago=5)]}
    answer = post(body)
    assert answer.status_code == 201, answer.content
    assert answer.json() == {"accepted": 2}
    visits = list(case.visits.order_by("start"))
    assert [(v.venue_id, v.source, v.review) for v in visits] == [
        (venue.pk, CaseVisit.Source.UPLOAD, CaseVisit.Review.PROPOSED),
        (other.pk, CaseVisit.Source.UPLOAD, CaseVisit.Review.PROPOSED),
    ]
    first = body["visits"][0]
    assert visits[0].start.timestamp() == first["t_in"] and visits[0].end.timestamp() == first["t_out"]
    assert CaseUploadCode.objects.get().used_at is not None


def test_a_code_since_revoked_by_regeneration_is_still_a_valid_past_visit(case, code, venue):
    old = jws_of(venue)
    venue_code_regenerate(venue=venue)
    assert post({"code": code, "visits": [visit(old)]}).status_code == 201
    assert case.visits.get().venue_id == venue.pk


def test_overlapping_visits_at_one_venue_are_merged(case, code, venue):
    jws = jws_of(venue)
    t0 = now() - 10 * 3600
    visits = [
        {"venue_code": jws, "t_in": t0, "t_out": t0 + 3600},
        {"venue_code": jws, "t_in": t0 + 1800, "t_out": t0 + 5400},  # overlaps the first
        {"venue_code": jws, "t_in": t0 + 7200, "t_out": t0 + 9000},  # apart
    ]
    assert post({"code": code, "visits": visits}).json() == {"accepted": 3}
    windows = [(v.start.timestamp(), v.end.timestamp()) for v in case.visits.order_by("start")]
    assert windows == [(t0, t0 + 5400), (t0 + 7200, t0 + 9000)]


def test_a_visit_still_open_ends_at_the_upload(case, code, venue):
    t_in = now() - 600
    assert post({"code": code, "visits": [{"venue_code": jws_of(venue), "t_in": t_in, "t_out": t_in + 4 * 3600}]})
    assert case.visits.get().end <= timezone.now()


def test_the_code_is_read_as_people_type_it(code):
    plain = code.replace("-", "")
    assert upload_code_normalize(plain.lower()) == plain
    assert upload_code_normalize(f" {code.lower()} ") == plain
    typo = plain.replace("1", "l").replace("0", "O")
    assert upload_code_normalize(typo) == plain
    assert upload_code_normalize("ABCDE-FGHIU") is None  # U is not in the alphabet


def test_config_names_the_case_upload_limits(settings):
    settings.LEAVEHOME_MAX_CASE_UPLOAD_VISITS = 150
    body = Client().get("/api/v1/config").json()
    assert body["case_upload_code_hours"] == 24
    assert body["max_case_upload_visits"] == 150


# --- bad inputs: each refused, with every table unchanged ------------------------------------


def _refused(body=None, *, raw=None, status=400):
    before = database_contents()
    answer = post(body, raw=raw)
    assert answer.status_code == status, answer.content
    assert database_contents() == before
    if status == 404:
        assert answer.content == b'{"error":"code_not_found"}'  # PROTOCOL §6, to the byte
        return answer.json()
    return answer.json()["error"]


def _refused_visit(code, venue, bad_visit, *, reason, field="venue_code"):
    """A good visit first and the bad one second: the error names index 1 and nothing is kept."""
    error = _refused({"code": code, "visits": [visit(jws_of(venue)), bad_visit]})
    assert error["visit"] == 1
    assert error["code"] == reason
    assert list(error["fields"]) == [f"visits.1.{field}"]
    assert CaseUploadCode.objects.get().used_at is None  # the code was not consumed
    return error


def test_a_forged_signature_is_refused(code, venue):
    forged = signed(venue, private_key=Ed25519PrivateKey.generate())
    _refused_visit(code, venue, visit(forged), reason="bad_signature")


def test_a_valid_signature_over_a_swapped_vk_is_refused(code, venue):
    # Signed by our own key (as if by a leaked signing key, or a code of another version).
    swapped = signed(venue, vk=b64u_encode(vk_new()))
    _refused_visit(code, venue, visit(swapped), reason="vk_mismatch")


def test_another_venues_vk_is_refused(code, venue):
    other = venue_make()
    other_vk = code_claims(VenueCode.objects.get(venue=other))["vk"]
    _refused_visit(code, venue, visit(signed(venue, vk=other_vk)), reason="vk_mismatch")


def test_an_unknown_kid_is_refused(code, venue):
    _refused_visit(code, venue, visit(signed(venue, kid="nobody-2026")), reason="unknown_key")


def test_an_unknown_sub_or_ver_is_refused(code, venue):
    _refused_visit(code, venue, visit(signed(venue, ver=7)), reason="unknown_venue_code")
    _refused_visit(
        code, venue, visit(signed(venue, sub="0b7c6a4e-1d2f-4a3b-8c9d-0e1f2a3b4c5d")), reason="unknown_venue_code"
    )


def test_a_malformed_venue_code_is_refused(code, venue):
    _refused_visit(code, venue, visit("not.a.jws"), reason="malformed_venue_code")


def test_times_outside_retention_are_refused(code, venue, settings):
    jws = jws_of(venue)
    old = now() - settings.LEAVEHOME_RETENTION_DAYS * 86400 - 60
    _refused_visit(
        code, venue, {"venue_code": jws, "t_in": old, "t_out": old + 600}, reason="outside_retention", field="t_in"
    )
    future = now() + 3600
    _refused_visit(
        code,
        venue,
        {"venue_code": jws, "t_in": future, "t_out": future + 600},
        reason="outside_retention",
        field="t_in",
    )


def test_t_out_not_after_t_in_is_refused(code, venue):
    t_in = now() - 3600
    for t_out in (t_in, t_in - 1):
        bad = {"venue_code": jws_of(venue), "t_in": t_in, "t_out": t_out}
        _refused_visit(code, venue, bad, reason="bad_times", field="t_out")


def test_a_visit_longer_than_max_visit_seconds_is_refused_not_clipped(code, venue, settings):
    t_in = now() - 20 * 3600
    bad = {"venue_code": jws_of(venue), "t_in": t_in, "t_out": t_in + settings.LEAVEHOME_MAX_VISIT_SECONDS + 1}
    _refused_visit(code, venue, bad, reason="too_long", field="t_out")


def test_more_than_max_case_upload_visits_is_refused(code, venue, settings):
    settings.LEAVEHOME_MAX_CASE_UPLOAD_VISITS = 2
    error = _refused({"code": code, "visits": [visit(jws_of(venue))] * 3})
    assert error["code"] == "too_many"
    assert "visits" in error["fields"]


def test_malformed_json_and_bad_shapes_are_refused(code, venue):
    assert _refused(raw='{"code": "7Q3KD-MX2PA", "visits": [')["code"] == "parse_error"
    assert _refused({"code": code, "visits": []})["fields"].keys() == {"visits"}
    bad_time = {**visit(jws_of(venue)), "t_in": "1795406700"}
    assert "visits.0.t_in" in _refused({"code": code, "visits": [bad_time]})["fields"]
    assert "visits.0.extra" in _refused({"code": code, "visits": [{**visit(jws_of(venue)), "extra": 1}]})["fields"]


def test_wrong_expired_used_and_revoked_codes_get_the_same_404(case, venue, settings):
    actor = official()
    jws = jws_of(venue)
    answers = []

    answers.append(_refused({"code": "7Q3KD-MX2PA", "visits": [visit(jws)]}, status=404))
    answers.append(_refused({"code": "not a code", "visits": [visit(jws)]}, status=404))

    expired_row, expired = case_upload_code_issue(case=case, actor=actor)
    CaseUploadCode.objects.filter(pk=expired_row.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    answers.append(_refused({"code": expired, "visits": [visit(jws)]}, status=404))

    revoked_row, revoked = case_upload_code_issue(case=case, actor=actor)
    case_upload_code_revoke(upload_code=revoked_row, actor=actor)
    answers.append(_refused({"code": revoked, "visits": [visit(jws)]}, status=404))

    _, used = case_upload_code_issue(case=case, actor=actor)
    assert post({"code": used, "visits": [visit(jws)]}).status_code == 201
    answers.append(_refused({"code": used, "visits": [visit(jws)]}, status=404))

    _, published = case_upload_code_issue(case=case, actor=actor)
    Case.objects.filter(pk=case.pk).update(status=Case.Status.PUBLISHED)
    answers.append(_refused({"code": published, "visits": [visit(jws)]}, status=404))

    assert all(answer == answers[0] for answer in answers)
    assert answers[0] == {"error": "code_not_found"}


def test_attempts_are_throttled_with_retry_after(code, venue, settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "case_upload_ip": "2/hour"}
    jws = jws_of(venue)
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        for _ in range(2):
            assert post({"code": "7Q3KD-MX2PA", "visits": [visit(jws)]}).status_code == 404
        before = database_contents()
        refused = post({"code": code, "visits": [visit(jws)]})
        assert refused.status_code == 429
        assert int(refused["Retry-After"]) > 0
        assert refused.json()["error"]["code"] == "throttled"
        assert database_contents() == before
        # Another address is not held back by this one, until the overall ceiling.
        assert post({"code": code, "visits": [visit(jws)]}, REMOTE_ADDR="10.0.0.9").status_code == 201


def test_the_overall_throttle_holds_every_address(venue, settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "case_upload_global": "3/hour"}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        statuses = [
            post({"code": "7Q3KD-MX2PA", "visits": [visit(jws_of(venue))]}, REMOTE_ADDR=f"10.0.0.{n}").status_code
            for n in range(4)
        ]
    assert statuses == [404, 404, 404, 429]


def test_a_burst_of_wrong_codes_is_logged_as_a_warning(venue, caplog):
    with caplog.at_level(logging.WARNING, logger="notifications.api.case_uploads"):
        for _ in range(5):
            post({"code": "7Q3KD-MX2PA", "visits": [visit(jws_of(venue))]})
    (record,) = [r for r in caplog.records if r.name == "notifications.api.case_uploads"]
    assert "5 wrong codes" in record.getMessage()
    assert "127.0.0.1" not in record.getMessage()  # a keyed hash of the address, not the address


# --- single use under concurrency, and the audit trail ---------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_uploads_with_one_code_exactly_one_succeeds(case, code, venue):
    body = {"code": code, "visits": [visit(jws_of(venue))]}
    statuses = []

    def upload():
        try:
            statuses.append(post(body).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=upload) for _ in range(2)]
    # Hold the case's row so both uploads are inside their transactions, waiting, before
    # either can go on: then let them race for the code.
    with transaction.atomic():
        Case.objects.select_for_update().get(pk=case.pk)
        for thread in threads:
            thread.start()
        with connection.cursor() as cursor:
            waiting = 0
            while waiting < 2 and all(thread.is_alive() for thread in threads):
                # Statistics views are read once per transaction unless the snapshot is cleared.
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                waiting = cursor.fetchone()[0]
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 404]
    assert case.visits.count() == 1
    assert AuditEntry.objects.filter(action="case_upload_code.consume").count() == 1


def test_issuing_revoking_and_consuming_are_audited(case, venue):
    actor = official()
    first, _ = case_upload_code_issue(case=case, actor=actor)
    case_upload_code_revoke(upload_code=first, actor=actor)
    second, code = case_upload_code_issue(case=case, actor=actor)
    assert post({"code": code, "visits": [visit(jws_of(venue))]}).status_code == 201
    entries = list(
        AuditEntry.objects.filter(action__startswith="case_upload_code.")
        .order_by("pk")
        .values_list("action", "actor", "object_id", "detail")
    )
    assert [(action, actor_id, object_id) for action, actor_id, object_id, _ in entries] == [
        ("case_upload_code.issue", actor.pk, str(first.pk)),
        ("case_upload_code.revoke", actor.pk, str(first.pk)),
        ("case_upload_code.issue", actor.pk, str(second.pk)),
        ("case_upload_code.consume", None, str(second.pk)),
    ]
    assert entries[-1][3] == {"case": case.pk, "visits": 1, "case_visits_proposed": 1}


def test_issuing_a_new_code_revokes_the_live_one(case, venue):
    actor = official()
    _, first = case_upload_code_issue(case=case, actor=actor)
    case_upload_code_issue(case=case, actor=actor)
    assert post({"code": first, "visits": [visit(jws_of(venue))]}).status_code == 404


def test_only_the_hash_of_a_code_is_stored(case, code):
    stored = CaseUploadCode.objects.get()
    assert code.replace("-", "").encode() not in bytes(stored.code_hash)
    assert len(bytes(stored.code_hash)) == 32
