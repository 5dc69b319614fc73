"""Uploads racing a publication, in separate connections: no expected match may be lost.

Then a withdrawal racing matching: the case row lock orders them, so no notification of a
withdrawn case stays active.

Each thread has its own database connection (Django's are per thread), so each transaction
cannot see the other's rows until it commits. Matching runs in the committing thread,
right after its commit, as a worker would pick it up: the publication's tasks eagerly, the
upload's sweep explicitly. Two interleavings are forced with
barriers (each transaction held open while the other commits and matches), then uploads and
publications are let loose together, repeatedly.
"""

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from notifications.cases import case_publish, case_withdraw
from notifications.devices import device_register
from notifications.matching import (
    publication_backlog_add,
    publications_sweep_batch,
    uploads_backlog_add,
    uploads_sweep_batch,
)
from notifications.models import Case, CaseVisit, Notification, PublicationBacklog, UploadBacklog, VisitToken
from notifications.partitions import visit_token_partitions_ensure
from notifications.tasks import case_publish_and_match
from notifications.visits import visit_tokens_ingest
from tests.phone.derivation import visit_tokens
from tests.phone.server import uploads_swept
from venues.keys import signing_key_create
from venues.keystore import vk_decrypt
from venues.models import VenueCode
from venues.services import venue_register

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ZONE = ZoneInfo(settings.TIME_ZONE)
ROUNDS = 6
UPLOADERS = 4


def _in_thread(function, errors):
    def run():
        try:
            function()
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)
        finally:
            connection.close()

    return threading.Thread(target=run)


def _run_all(functions):
    errors = []
    threads = [_in_thread(function, errors) for function in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert not errors, errors


@pytest.fixture
def scene():
    signing_key_create()
    owner = get_user_model().objects.create_user(username="owner", password="irrelevant 12345")
    venue = venue_register(owner=owner, name_en="Race Cafe", name_zh="賽咖啡", category="catering")
    VenueCode.objects.filter(venue=venue).update(issued_at=timezone.now() - dt.timedelta(days=60))
    noon = dt.datetime.combine(timezone.localdate() - dt.timedelta(days=1), dt.time(12), tzinfo=ZONE)
    # Created beforehand, so no upload transaction holds partition DDL locks while a test
    # keeps it open on purpose.
    visit_token_partitions_ensure([noon.date()])
    vk = vk_decrypt(venue.codes.get())
    return venue, vk, noon


def _new_case(venue, noon, reference):
    case = Case.objects.create(reference=reference, confirmed_on=timezone.localdate())
    CaseVisit.objects.create(case=case, venue=venue, start=noon, end=noon + dt.timedelta(hours=1))
    return case


def _visit_days(vk, noon):
    start = int(noon.timestamp()) + 600
    return visit_tokens(vk, start, start + 1200, settings.TIME_ZONE)  # 12:10–12:30: high risk


def _high_devices(case, devices):
    # Earlier rounds' devices were at the same place and time, so they match this case too.
    notifications = Notification.objects.filter(case_visit__case=case, risk="high", device__in=devices)
    return set(notifications.values_list("device_id", flat=True))


def _round_upload_held_open(venue, vk, noon, reference):
    """The upload's transaction stays open while the publication commits and matches."""
    case = _new_case(venue, noon, reference)
    device, _ = device_register()
    uploaded, published = threading.Barrier(2, timeout=60), threading.Barrier(2, timeout=60)

    def upload_held_open():
        with transaction.atomic():
            visit_tokens_ingest(device=device, days=_visit_days(vk, noon))
            uploaded.wait()
            published.wait()  # the publication has committed and matched without our tokens
        uploads_swept()

    def publish():
        uploaded.wait()
        case_publish_and_match(case=case, actor=None)
        published.wait()

    _run_all([upload_held_open, publish])
    return _high_devices(case, [device]) == {device.pk}


def _round_publication_held_open(venue, vk, noon, reference):
    """The publication's transaction stays open while the upload commits and matches."""
    case = _new_case(venue, noon, reference)
    device, _ = device_register()
    published, uploaded = threading.Barrier(2, timeout=60), threading.Barrier(2, timeout=60)

    def publish_held_open():
        with transaction.atomic():
            case_publish_and_match(case=case, actor=None)
            published.wait()
            uploaded.wait()  # the upload has committed and matched without our exposures

    def upload():
        published.wait()
        visit_tokens_ingest(device=device, days=_visit_days(vk, noon))
        uploads_swept()
        uploaded.wait()

    _run_all([publish_held_open, upload])
    return _high_devices(case, [device]) == {device.pk}


def _round_free(venue, vk, noon, reference):
    """Several uploads and the publication released at once."""
    case = _new_case(venue, noon, reference)
    devices = [device_register()[0] for _ in range(UPLOADERS)]
    start = threading.Barrier(UPLOADERS + 1, timeout=60)

    def upload(device):
        start.wait()
        visit_tokens_ingest(device=device, days=_visit_days(vk, noon))
        uploads_swept()

    def publish():
        start.wait()
        case_publish_and_match(case=case, actor=None)

    _run_all([publish] + [lambda device=device: upload(device) for device in devices])
    one_each = Notification.objects.filter(case_visit__case=case, device__in=devices).count() == UPLOADERS
    return one_each and _high_devices(case, devices) == {device.pk for device in devices}


def test_an_upload_committed_after_the_publication_matched_is_still_matched(scene):
    assert all(_round_upload_held_open(*scene, f"held-upload-{n}") for n in range(ROUNDS))


def test_a_publication_committed_after_the_upload_matched_still_finds_it(scene):
    assert all(_round_publication_held_open(*scene, f"held-publication-{n}") for n in range(ROUNDS))


def test_concurrent_uploads_and_publication_lose_no_match(scene):
    assert all(_round_free(*scene, f"free-{n}") for n in range(ROUNDS))


def test_an_upload_committed_while_a_sweep_runs_is_matched_once_by_a_later_sweep(scene):
    venue, vk, noon = scene
    case = _published(venue, noon, "upload-during-sweep")
    first, second = device_register()[0], device_register()[0]
    visit_tokens_ingest(device=first, days=_visit_days(vk, noon))
    claimed, uploaded = threading.Barrier(2, timeout=60), threading.Barrier(2, timeout=60)
    swept = []

    def sweep_held_open():
        with transaction.atomic():
            swept.append(uploads_sweep_batch().uploads)  # claims the first upload's row
            claimed.wait()
            uploaded.wait()  # the second upload committed and was swept meanwhile

    def upload_and_sweep():
        claimed.wait()
        visit_tokens_ingest(device=second, days=_visit_days(vk, noon))
        # A concurrent sweep skips the rows the open one holds and takes only the new upload.
        swept.append(uploads_sweep_batch().uploads)
        uploaded.wait()

    _run_all([sweep_held_open, upload_and_sweep])
    assert sorted(swept) == [1, 1]
    assert uploads_swept() == 0
    assert not UploadBacklog.objects.exists()
    notified = Notification.objects.filter(case_visit__case=case).values_list("device_id", "risk")
    assert sorted(notified) == sorted([(first.pk, "high"), (second.pk, "high")])


# --- publication sweeps racing each other ---------------------------------------------------


def test_concurrent_publication_sweeps_match_each_chunk_once(scene):
    venue, vk, noon = scene
    devices = [device_register()[0] for _ in range(3)]
    for device in devices:
        visit_tokens_ingest(device=device, days=_visit_days(vk, noon))
    uploads_swept()  # no case yet: nothing matched, the uploads wait for a publication
    case = _new_case(venue, noon, "sweeps-racing")
    case_publish(case=case, actor=None)  # the service alone: its chunk waits in the backlog
    claimed, skipped = threading.Barrier(2, timeout=60), threading.Barrier(2, timeout=60)
    swept = []

    def sweep_held_open():
        with transaction.atomic():
            chunk = publications_sweep_batch()  # claims the chunk, matches it, holds the lock
            swept.append(len(chunk.notification_ids))
            claimed.wait()
            skipped.wait()

    def sweep_meanwhile():
        claimed.wait()
        swept.append(publications_sweep_batch())  # SKIP LOCKED: the held chunk is not its to take
        skipped.wait()

    _run_all([sweep_held_open, sweep_meanwhile])
    assert sorted(swept, key=str) == [3, None]
    assert publications_sweep_batch() is None  # run again: the chunk left with its notifications
    assert not PublicationBacklog.objects.exists()

    # The same chunk matched a second time (an old match_publication message, a chunk row
    # written again): nobody is notified twice.
    before = set(Notification.objects.values_list("pk", "device_id", "risk", "updated_at"))
    publication_backlog_add(case_id=case.pk, chunks={noon.date(): list(case.visits.values_list("pk", flat=True))})
    assert publications_sweep_batch().notification_ids == []
    assert set(Notification.objects.values_list("pk", "device_id", "risk", "updated_at")) == before
    assert sorted(_high_devices(case, devices)) == sorted(device.pk for device in devices)


# --- a withdrawal racing matching ------------------------------------------------------------


def _wait_until_blocked(query_fragment):
    """Wait until another connection's statement containing ``query_fragment`` waits on a lock."""
    with connection.cursor() as cursor:
        for _ in range(600):
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                [f"%{query_fragment}%"],
            )
            if cursor.fetchone()[0]:
                return
            threading.Event().wait(0.1)
    raise AssertionError(f"no statement with {query_fragment!r} ever waited")


def _published(venue, noon, reference):
    case = _new_case(venue, noon, reference)
    case_publish_and_match(case=case, actor=None)  # no tokens stored yet: matches nothing
    return case


def test_an_upload_matched_while_its_case_is_being_withdrawn_stays_unnotified(scene):
    venue, vk, noon = scene
    case = _published(venue, noon, "withdrawn-during-upload")
    device, _ = device_register()
    withdrawn = threading.Barrier(2, timeout=60)

    def withdraw_held_open():
        with transaction.atomic():
            case_withdraw(case=case, actor=None)
            withdrawn.wait()
            _wait_until_blocked("WITH matched")  # the upload's match waits for our commit

    def upload():
        withdrawn.wait()
        visit_tokens_ingest(device=device, days=_visit_days(vk, noon))
        uploads_swept()

    _run_all([withdraw_held_open, upload])
    assert not Notification.objects.filter(case_visit__case=case, status="active").exists()


def test_a_match_committed_while_its_case_is_being_withdrawn_is_marked_withdrawn(scene):
    venue, vk, noon = scene
    case = _published(venue, noon, "withdrawn-during-match")
    device, _ = device_register()
    VisitToken.objects.bulk_create(
        VisitToken(date=date, token=token, device=device)
        for date, tokens in _visit_days(vk, noon).items()
        for token in tokens
    )
    uploads_backlog_add(device_id=device.pk, dates=[noon.date()])
    matched = threading.Barrier(2, timeout=60)

    def match_held_open():
        with transaction.atomic():
            assert uploads_sweep_batch().notification_ids
            matched.wait()
            _wait_until_blocked("FOR UPDATE")  # the withdrawal waits for our commit

    def withdraw():
        matched.wait()
        case_withdraw(case=case, actor=None)

    _run_all([match_held_open, withdraw])
    assert list(Notification.objects.filter(case_visit__case=case).values_list("status", flat=True)) == ["withdrawn"]
