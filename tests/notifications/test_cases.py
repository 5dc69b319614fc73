"""Publishing and withdrawing cases, building their exposure tokens, importing case visits from CSV."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone

from leavehome.lib.b64u import b64u_encode
from leavehome.models import AuditEntry
from notifications import matching
from notifications.cases import (
    CaseStateError,
    case_publish_request,
    case_publish_requested,
    case_visit_window_errors,
    case_visits_csv_parse,
    case_visits_import,
    case_withdraw,
)
from notifications.devices import device_register
from notifications.exposures import case_visit_exposures
from notifications.models import (
    Case,
    CaseVisit,
    ExposureFeedItem,
    ExposureToken,
    MatchingRun,
    Notification,
    PublicationBacklog,
)
from notifications.tasks import case_publish_and_match, case_publish_later, publish_case
from notifications.visits import visit_tokens_ingest
from tests.phone.derivation import visit_tokens
from venues.keys import signing_key_create
from venues.keystore import vk_decrypt, vk_encrypt
from venues.models import VenueCode
from venues.services import venue_register

ZONE = ZoneInfo(settings.TIME_ZONE)


@pytest.fixture
def official(db):
    return get_user_model().objects.create_user(username="official", password="irrelevant 12345", is_staff=True)


@pytest.fixture
def venue(db):
    signing_key_create()
    owner = get_user_model().objects.create_user(username="owner", password="irrelevant 12345")
    venue = venue_register(owner=owner, name_en="Lucky Noodle House", name_zh="好運麵家", category="catering")
    VenueCode.objects.filter(venue=venue).update(issued_at=timezone.now() - dt.timedelta(days=60))
    return venue


@pytest.fixture
def yesterday_noon():
    return dt.datetime.combine(timezone.localdate() - dt.timedelta(days=1), dt.time(12), tzinfo=ZONE)


@pytest.fixture
def draft(venue, official, yesterday_noon):
    case = Case.objects.create(reference="HK-2026-0001", confirmed_on=timezone.localdate(), created_by=official)
    CaseVisit.objects.create(
        case=case, venue=venue, start=yesterday_noon, end=yesterday_noon + dt.timedelta(minutes=30)
    )
    return case


def test_exposures_of_the_protocol_vector_window(venue):
    """PROTOCOL §5: window 12:40–13:10 on 2026-11-23 with vk 00…0f."""
    VenueCode.objects.filter(venue=venue).update(
        vk_encrypted=vk_encrypt(venue_id=venue.pk, version=1, vk=bytes(range(16)))
    )
    start = dt.datetime(2026, 11, 23, 12, 40, tzinfo=ZONE)
    case = Case.objects.create(reference="vector", confirmed_on=dt.date(2026, 11, 23))
    case_visit = CaseVisit.objects.create(case=case, venue=venue, start=start, end=start + dt.timedelta(minutes=30))

    tokens = {(b64u_encode(e.token), e.risk, e.date) for e in case_visit_exposures(case_visit)}

    day = dt.date(2026, 11, 23)
    assert tokens == {
        ("aDyri0l_rRkO0OXteQ0Quw", "high", day),
        ("8zh9oOjfnroVby1zuo0_TA", "high", day),
        ("r0oc9RU1Fen_64_LQF5ghg", "high", day),
        ("2K8wn5KqYny4C-4HkrsnRw", "low", day),
    }


def test_padding_widens_the_window_by_whole_minutes(draft):
    case_visit = draft.visits.get()
    unpadded = len(case_visit_exposures(case_visit))
    case_visit.padding_minutes = 15
    assert len(case_visit_exposures(case_visit)) == unpadded + 2  # a slot before, a slot after


def test_a_code_issued_after_the_window_is_not_used(draft, venue, yesterday_noon):
    VenueCode.objects.create(
        venue=venue,
        version=2,
        vk_encrypted=vk_encrypt(venue_id=venue.pk, version=2, vk=bytes(16)),
        signing_key=venue.codes.get(version=1).signing_key,
        issued_at=yesterday_noon + dt.timedelta(hours=1),
    )
    case_visit = draft.visits.get()
    assert len(case_visit_exposures(case_visit)) == 3  # two slots and the day token of version 1 only
    VenueCode.objects.filter(venue=venue, version=2).update(issued_at=yesterday_noon)
    assert len(case_visit_exposures(case_visit)) == 6  # both versions: the phone may hold either


def test_publishing_stores_exposures_appends_the_feed_and_audits(draft, official, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        case_publish_and_match(case=draft, actor=official)

    draft.refresh_from_db()
    assert draft.status == Case.Status.PUBLISHED and draft.published_at
    assert ExposureToken.objects.filter(case_visit__case=draft).count() == 3
    assert ExposureFeedItem.objects.filter(status="active").count() == 3
    assert AuditEntry.objects.filter(action="case.publish", object_id=str(draft.pk), actor=official).exists()
    assert len(callbacks) == 1  # one matching task: one date, one batch of case visits


def test_publication_is_queued_for_a_worker_and_a_repeated_task_is_harmless(
    draft, official, django_capture_on_commit_callbacks
):
    case_publish_later(case=draft, actor=official)
    draft.refresh_from_db()
    assert draft.status == Case.Status.DRAFT  # nothing happens before the commit
    with django_capture_on_commit_callbacks(execute=True):
        case_publish_later(case=draft, actor=official)
    draft.refresh_from_db()
    assert draft.status == Case.Status.PUBLISHED

    assert publish_case.apply(args=[draft.pk, official.pk]).get() is False  # a redelivery
    assert ExposureToken.objects.count() == 3
    assert ExposureFeedItem.objects.count() == 3
    assert AuditEntry.objects.filter(action="case.publish").count() == 1


def test_a_publication_that_cannot_succeed_is_refused_before_queueing(
    draft, official, django_capture_on_commit_callbacks
):
    draft.visits.update(end=timezone.now() + dt.timedelta(hours=1))
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ValidationError):
        case_publish_later(case=draft, actor=official)
    assert callbacks == []


def test_a_big_publication_is_shared_out_in_one_task_per_date_and_batch(
    draft, venue, official, yesterday_noon, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(matching, "CASE_VISIT_BATCH", 2)
    before = yesterday_noon - dt.timedelta(days=1)
    for start in (yesterday_noon + dt.timedelta(hours=2), before, before + dt.timedelta(hours=2)):
        CaseVisit.objects.create(case=draft, venue=venue, start=start, end=start + dt.timedelta(minutes=30))
    device, _ = device_register()
    start = int(before.timestamp())
    visit_tokens_ingest(
        device=device, days=visit_tokens(vk_decrypt(venue.codes.get()), start, start + 600, settings.TIME_ZONE)
    )

    with django_capture_on_commit_callbacks() as callbacks:
        case_publish_and_match(case=draft, actor=official)
    # Written with the publication, before any task runs: two chunks, one per date.
    chunks = sorted((row.date, len(row.case_visit_ids)) for row in PublicationBacklog.objects.filter(case=draft))
    assert chunks == [(before.date(), 2), (yesterday_noon.date(), 2)]
    for callback in callbacks:
        callback()

    # Two visits on each of two dates, two per batch: one sweep task per chunk.
    assert len(callbacks) == 2
    assert not PublicationBacklog.objects.exists()
    assert MatchingRun.objects.filter(case=draft).count() == 2
    # Within the 12:00 window (high) and on the date of the 14:00 one (low).
    assert sorted(Notification.objects.values_list("device_id", "risk")) == [(device.pk, "high"), (device.pk, "low")]


def test_a_case_can_be_published_once(draft, official):
    case_publish_and_match(case=draft, actor=official)
    with pytest.raises(CaseStateError):
        case_publish_and_match(case=draft, actor=official)


def test_a_window_in_the_future_is_not_published_and_nothing_is_written(draft, official):
    draft.visits.update(end=timezone.now() + dt.timedelta(hours=1))
    with pytest.raises(ValidationError):
        case_publish_and_match(case=draft, actor=official)
    draft.refresh_from_db()
    assert draft.status == Case.Status.DRAFT
    assert not ExposureToken.objects.exists() and not ExposureFeedItem.objects.exists()
    assert not PublicationBacklog.objects.exists()


def test_window_validation_names_each_problem():
    now = timezone.now()
    assert case_visit_window_errors(start=now - dt.timedelta(hours=1), end=now - dt.timedelta(minutes=1), now=now) == []
    assert len(case_visit_window_errors(start=now, end=now - dt.timedelta(hours=1), now=now)) == 1
    assert len(case_visit_window_errors(start=now, end=now + dt.timedelta(hours=1), now=now)) == 1
    old = now - dt.timedelta(days=settings.LEAVEHOME_RETENTION_DAYS + 1)
    assert len(case_visit_window_errors(start=old, end=old + dt.timedelta(hours=1), now=now)) == 1


def test_withdrawing_marks_notifications_and_feed_items_withdrawn(
    draft, venue, official, yesterday_noon, django_capture_on_commit_callbacks
):
    device, _ = device_register()
    start = int(yesterday_noon.timestamp())
    with django_capture_on_commit_callbacks(execute=True):
        days = visit_tokens(vk_decrypt(venue.codes.get()), start, start + 600, settings.TIME_ZONE)
        visit_tokens_ingest(device=device, days=days)
    with django_capture_on_commit_callbacks(execute=True):
        case_publish_and_match(case=draft, actor=official)
    notification = Notification.objects.get()
    assert (notification.device_id, notification.risk, notification.status) == (device.pk, "high", "active")

    with django_capture_on_commit_callbacks(execute=True):
        case_withdraw(case=draft, actor=official, reason="test result was wrong")

    withdrawn = Notification.objects.get()
    assert withdrawn.status == "withdrawn"
    assert withdrawn.updated_at > notification.updated_at
    feed = list(ExposureFeedItem.objects.order_by("id").values_list("token", "status"))
    assert [status for _, status in feed] == ["active"] * 3 + ["withdrawn"] * 3
    assert {bytes(token) for token, _ in feed[:3]} == {bytes(token) for token, _ in feed[3:]}
    assert AuditEntry.objects.filter(action="case.withdraw", actor=official).get().detail["notifications"] == 1

    # A withdrawn case matches no later upload.
    late, _ = device_register()
    with django_capture_on_commit_callbacks(execute=True):
        visit_tokens_ingest(device=late, days=days)
    assert not Notification.objects.filter(device=late).exists()


def test_only_a_published_case_can_be_withdrawn(draft, official):
    with pytest.raises(CaseStateError):
        case_withdraw(case=draft, actor=official)


# --- CSV import ---------------------------------------------------------------------------


def _csv(*rows, header=True):
    lines = (["venue_id,start,end"] if header else []) + [",".join(row) for row in rows]
    return "\n".join(lines) + "\n"


def test_csv_rows_are_parsed_in_local_time(draft, venue, yesterday_noon):
    day = yesterday_noon.date().isoformat()
    rows = case_visits_csv_parse(_csv((str(venue.pk), f"{day} 18:00", f"{day} 19:30")))
    assert [row.errors for row in rows] == [[]]
    assert rows[0].start == yesterday_noon + dt.timedelta(hours=6)
    assert rows[0].end.utcoffset() is not None


def test_csv_errors_are_reported_per_row(draft, venue, yesterday_noon):
    day = yesterday_noon.date().isoformat()
    text = _csv(
        (str(venue.pk), f"{day} 18:00", f"{day} 19:30"),
        ("not-a-uuid", f"{day} 18:00", f"{day} 19:30"),
        ("3f2b8c1e-5d4a-4e7b-9c2d-1a0b9e8f7d6c", f"{day} 18:00", f"{day} 19:30"),
        (str(venue.pk), f"{day} 19:30", f"{day} 18:00"),
        (str(venue.pk), "yesterday", "today"),
        (str(venue.pk), f"{day} 18:00"),
    )
    rows = case_visits_csv_parse(text)
    assert [row.line for row in rows] == [2, 3, 4, 5, 6, 7]
    assert [bool(row.errors) for row in rows] == [False, True, True, True, True, True]


def test_csv_import_is_all_or_nothing(draft, venue, official, yesterday_noon):
    day = yesterday_noon.date().isoformat()
    good = (str(venue.pk), f"{day} 18:00", f"{day} 19:30")
    rows = case_visits_csv_parse(_csv(good, (str(venue.pk), f"{day} 19:30", f"{day} 18:00")))
    with pytest.raises(ValidationError):
        case_visits_import(case=draft, rows=rows, actor=official)
    assert draft.visits.count() == 1

    rows = case_visits_csv_parse(_csv(good, good, header=False))
    case_visits_import(case=draft, rows=rows, actor=official)
    assert draft.visits.count() == 3
    assert AuditEntry.objects.filter(action="case.import_visits").get().detail["rows"] == 2


def test_csv_import_needs_a_draft(draft, venue, official, yesterday_noon):
    case_publish_and_match(case=draft, actor=official)
    day = yesterday_noon.date().isoformat()
    rows = case_visits_csv_parse(_csv((str(venue.pk), f"{day} 18:00", f"{day} 19:30")))
    with pytest.raises(CaseStateError):
        case_visits_import(case=draft, rows=rows, actor=official)


def test_a_request_no_worker_took_is_published_by_the_sweep_once_only(draft, official, yesterday_noon):
    # The official's request committed, but its task never reached a worker (broker down).
    case_publish_request(case=draft, actor=official)
    draft.refresh_from_db()
    assert draft.status == Case.Status.DRAFT and draft.publish_requested_at is not None
    assert case_publish_requested(older_than=dt.timedelta(minutes=1)) is None  # its own task may yet come

    publication = case_publish_requested(older_than=dt.timedelta(0))
    assert publication.case.status == Case.Status.PUBLISHED and publication.chunks
    draft.refresh_from_db()
    assert draft.publish_requested_at is None
    assert PublicationBacklog.objects.filter(case=draft).count() == 1
    assert AuditEntry.objects.get(action="case.publish").actor == official
    assert case_publish_requested(older_than=dt.timedelta(0)) is None  # nothing left to publish
    assert publish_case.apply(args=[draft.pk, official.pk]).get() is False  # the late task: a no-op


def test_a_request_that_can_no_longer_succeed_is_dropped(draft, official):
    case_publish_request(case=draft, actor=official)
    draft.visits.update(end=timezone.now() + dt.timedelta(hours=1))  # edited since: not publishable
    publication = case_publish_requested(older_than=dt.timedelta(0))
    assert publication.chunks == {}
    draft.refresh_from_db()
    assert draft.status == Case.Status.DRAFT and draft.publish_requested_at is None
    assert not ExposureToken.objects.exists() and not PublicationBacklog.objects.exists()
    assert case_publish_requested(older_than=dt.timedelta(0)) is None
