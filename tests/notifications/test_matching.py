"""The matching core against a brute-force oracle written from PROTOCOL §2–3, and its SQL guards.

The phone side is the reference phone client's derivation (tests/phone/derivation.py), not
the server's notifications/tokens.py; the oracle knows nothing of tokens at all: it compares
visit and case windows as slots and local dates.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from notifications import matching, partitions
from notifications.devices import device_register
from notifications.models import Case, CaseVisit, ExposureToken, MatchingRun, Notification, UploadBacklog, VisitToken
from notifications.partitions import visit_token_partitions_ensure
from notifications.tasks import case_publish_and_match, match_publication, match_uploads
from notifications.visits import visit_tokens_ingest
from tests.phone.derivation import visit_tokens
from tests.phone.server import uploads_swept
from venues.keys import signing_key_create
from venues.keystore import vk_decrypt
from venues.models import VenueCode
from venues.services import venue_code_regenerate, venue_register

SLOT = 900
ZONE = ZoneInfo(settings.TIME_ZONE)


# --- helpers ------------------------------------------------------------------------------


def make_venue(owner, name):
    """A venue whose codes count as issued long ago, so every window in the tests uses them."""
    venue = venue_register(owner=owner, name_en=name, name_zh=name, category="retail")
    VenueCode.objects.filter(venue=venue).update(issued_at=timezone.now() - dt.timedelta(days=60))
    return venue


def upload(device, code, t_in, t_out):
    """What a phone does: derive its tokens for one visit and upload them; then the sweep matches them."""
    visit_tokens_ingest(device=device, days=visit_tokens(vk_decrypt(code), t_in, t_out, settings.TIME_ZONE))
    uploads_swept()


def notifications_seen():
    return set(Notification.objects.values_list("device_id", "case_visit_id", "risk"))


def oracle(visits, case_visits):
    """PROTOCOL §2–3 by hand: high if a covered slot is shared, low if only a local date is.

    ``visits``: (device_id, venue_id, t_in, t_out); ``case_visits``: (case_visit_id,
    venue_id, start, end) with the padding already applied.
    """

    def slots(start, end):
        return set(range(start // SLOT, max(start // SLOT, (end - 1) // SLOT) + 1))

    def days(slot_set):
        return {dt.datetime.fromtimestamp(slot * SLOT, ZONE).date() for slot in slot_set}

    expected = {}
    for device_id, venue_id, t_in, t_out in visits:
        for case_visit_id, case_venue_id, start, end in case_visits:
            if venue_id != case_venue_id:
                continue
            visit_slots, window_slots = slots(t_in, t_out), slots(start, end)
            if visit_slots & window_slots:
                expected[device_id, case_visit_id] = "high"
            elif days(visit_slots) & days(window_slots):
                expected.setdefault((device_id, case_visit_id), "low")
    return {(device, case_visit, risk) for (device, case_visit), risk in expected.items()}


@pytest.fixture(autouse=True)
def _forget_partitions():
    # Test transactions roll back the partitions they create; the per-process cache must not
    # remember them.
    partitions._known_dates.clear()


@pytest.fixture
def world(db):
    signing_key_create()
    return get_user_model().objects.create_user(username="venue-owner", password="irrelevant 12345")


# --- the property test ----------------------------------------------------------------------

# Times are in 5-minute steps, so windows often start or end exactly on a slot boundary, over
# two local days around a midnight (so visits and windows cross it).
FIVE_MINUTES = 300
steps = st.integers(min_value=0, max_value=48 * 12)
durations = st.integers(min_value=1, max_value=6 * 12)

visit_strategy = st.tuples(
    st.integers(0, 3),  # device
    st.integers(0, 2),  # venue
    st.integers(0, 1),  # code version the phone scanned (version 2 exists if regenerated)
    steps,
    durations,
    st.booleans(),  # uploaded after the publication
)
case_visit_strategy = st.tuples(st.integers(0, 2), steps, durations, st.sampled_from([0, 0, 15, 20]))


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    visits=st.lists(visit_strategy, min_size=1, max_size=10),
    cases=st.lists(st.lists(case_visit_strategy, min_size=1, max_size=3), min_size=1, max_size=2),
    regenerated=st.lists(st.booleans(), min_size=3, max_size=3),
)
# Local midnight is step 288. A case 23:45–00:00 ends exactly on a slot boundary: device 0
# (23:30–00:30, crossing midnight) shares its slot, high; device 1 (00:00–00:15) shares neither
# slot nor date, nothing; devices 2 and 3 (22:00, 22:30, the second on a regenerated code, one
# uploading after publication) share only the date, low.
@example(
    visits=[(0, 0, 0, 282, 12, False), (1, 0, 0, 288, 3, True), (2, 0, 0, 264, 3, False), (3, 0, 1, 270, 3, True)],
    cases=[[(0, 285, 3, 0)]],
    regenerated=[True, False, False],
)
def test_notifications_equal_the_protocol_oracle(world, django_capture_on_commit_callbacks, visits, cases, regenerated):
    # Local midnight four days ago is in the middle of the time range.
    midnight = dt.datetime.combine(timezone.localdate() - dt.timedelta(days=4), dt.time.min, tzinfo=ZONE)
    origin = int(midnight.timestamp()) - 24 * 3600
    with transaction.atomic():
        venues = [make_venue(world, f"venue {n}") for n in range(3)]
        for venue, again in zip(venues, regenerated, strict=True):
            if again:
                venue_code_regenerate(venue=venue)
        VenueCode.objects.update(issued_at=timezone.now() - dt.timedelta(days=60))
        codes = {(code.venue_id, code.version): code for code in VenueCode.objects.all()}
        devices = [device_register()[0] for _ in range(4)]

        done_visits = []

        def upload_all(after_publication):
            for device_n, venue_n, version_n, start, length, after in visits:
                if after != after_publication:
                    continue
                venue = venues[venue_n]
                code = codes.get((venue.pk, version_n + 1)) or codes[venue.pk, 1]
                t_in = origin + start * FIVE_MINUTES
                t_out = t_in + length * FIVE_MINUTES
                with django_capture_on_commit_callbacks(execute=True):
                    upload(devices[device_n], code, t_in, t_out)
                done_visits.append((devices[device_n].pk, venue.pk, t_in, t_out))

        upload_all(after_publication=False)
        windows = []
        for number, case_visits in enumerate(cases):
            case = Case.objects.create(reference=f"case-{number}", confirmed_on=timezone.localdate())
            for venue_n, start, length, padding in case_visits:
                start_at = midnight - dt.timedelta(days=1) + dt.timedelta(seconds=start * FIVE_MINUTES)
                end_at = start_at + dt.timedelta(seconds=length * FIVE_MINUTES)
                case_visit = CaseVisit.objects.create(
                    case=case, venue=venues[venue_n], start=start_at, end=end_at, padding_minutes=padding
                )
                pad = padding * 60
                windows.append(
                    (case_visit.pk, venues[venue_n].pk, int(start_at.timestamp()) - pad, int(end_at.timestamp()) + pad)
                )
            with django_capture_on_commit_callbacks(execute=True):
                case_publish_and_match(case=case, actor=None)
        upload_all(after_publication=True)

        assert notifications_seen() == oracle(done_visits, windows)
        transaction.set_rollback(True)


# --- idempotence ----------------------------------------------------------------------------


@pytest.fixture
def published(world, django_capture_on_commit_callbacks):
    """One device that was at a venue 12:05–12:50 yesterday, and a case there 12:40–13:10."""
    venue = make_venue(world, "Lucky Noodle House")
    code = venue.codes.get()
    noon = dt.datetime.combine(timezone.localdate() - dt.timedelta(days=1), dt.time(12), tzinfo=ZONE)
    device, _ = device_register()
    with django_capture_on_commit_callbacks(execute=True):
        upload(device, code, int(noon.timestamp()) + 300, int(noon.timestamp()) + 3000)
    case = Case.objects.create(reference="C-1", confirmed_on=timezone.localdate())
    case_visit = CaseVisit.objects.create(
        case=case, venue=venue, start=noon + dt.timedelta(minutes=40), end=noon + dt.timedelta(minutes=70)
    )
    with django_capture_on_commit_callbacks(execute=True):
        case_publish_and_match(case=case, actor=None)
    return device, case_visit, noon.date()


def test_the_matching_tasks_run_twice_create_no_duplicate(published):
    device, case_visit, date = published
    assert notifications_seen() == {(device.pk, case_visit.pk, "high")}
    before = Notification.objects.get()

    # Redelivery of each task (acks_late: a worker died after the commit, before the ack).
    assert match_publication.apply(args=[case_visit.case_id, [case_visit.pk], date.isoformat()]).get() == 0
    assert uploads_swept() == 0  # a repeated sweep finds the backlog empty
    # The same dates queued again (a per-upload message of an earlier release, an upload
    # retried): swept again, they notify nobody twice.
    match_uploads.apply(args=[str(device.pk), [date.isoformat()]]).get()
    assert uploads_swept() == 1

    after = Notification.objects.get()
    assert (after.pk, after.risk, after.updated_at) == (before.pk, "high", before.updated_at)


def test_a_later_slot_upload_upgrades_a_low_notification_to_high(world, django_capture_on_commit_callbacks):
    venue = make_venue(world, "Tea House")
    code = venue.codes.get()
    morning = dt.datetime.combine(timezone.localdate() - dt.timedelta(days=2), dt.time(9), tzinfo=ZONE)
    device, _ = device_register()
    with django_capture_on_commit_callbacks(execute=True):
        upload(device, code, int(morning.timestamp()), int(morning.timestamp()) + 600)  # 09:00–09:10
    case = Case.objects.create(reference="C-2", confirmed_on=timezone.localdate())
    CaseVisit.objects.create(
        case=case, venue=venue, start=morning + dt.timedelta(hours=5), end=morning + dt.timedelta(hours=6)
    )
    with django_capture_on_commit_callbacks(execute=True):
        case_publish_and_match(case=case, actor=None)
    low = Notification.objects.get()
    assert low.risk == "low"

    with django_capture_on_commit_callbacks(execute=True):  # the phone uploads a visit at 14:30
        upload(device, code, int(morning.timestamp()) + 5 * 3600 + 1800, int(morning.timestamp()) + 5 * 3600 + 2400)
    high = Notification.objects.get()
    assert (high.pk, high.risk) == (low.pk, "high")
    assert high.updated_at > low.updated_at


def test_a_visit_to_another_venue_at_the_same_time_is_not_matched(world, published, django_capture_on_commit_callbacks):
    _device, case_visit, _date = published
    other = make_venue(world, "Other place")
    stranger, _ = device_register()
    start = int(case_visit.start.timestamp())
    with django_capture_on_commit_callbacks(execute=True):
        upload(stranger, other.codes.get(), start, start + 1800)
    assert not Notification.objects.filter(device=stranger).exists()


def test_publication_runs_are_recorded_for_the_dashboard(published):
    _device, case_visit, _date = published
    run = MatchingRun.objects.filter(direction="publication").get()
    assert (run.case_id, run.notifications) == (case_visit.case_id, 1)
    assert run.duration_ms >= 0


# --- the SQL's guards ------------------------------------------------------------------------


def test_a_sweep_batch_takes_a_bounded_number_of_queries(published, django_assert_max_num_queries):
    _device, _case_visit, date = published
    for n in range(5):
        for _other in range(20):
            matching.uploads_backlog_add(device_id=device_register()[0].pk, dates=[date - dt.timedelta(days=n)])
    # savepoint, claim, the upsert, the backlog delete, release (the hourly figures follow
    # the commit): whatever the batch's size
    with django_assert_max_num_queries(5):
        assert matching.uploads_sweep_batch().uploads == 100


def test_publication_matching_takes_a_bounded_number_of_queries(published, django_assert_max_num_queries):
    _device, case_visit, date = published
    with django_assert_max_num_queries(3):
        matching.publication_match(case_visit_ids=[case_visit.pk], date=date)


def _explain(statement_and_params):
    select, params = statement_and_params
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + select.as_string(connection.connection), params)
        return "\n".join(row[0] for row in cursor.fetchall())


def _fill_date(date, rows):
    """Many other devices' tokens on ``date``, so the planner prefers the indexes to a scan."""
    visit_token_partitions_ensure([date])
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO notifications_visittoken (date, token, device_id) "
            "SELECT %s, decode(md5(g::text), 'hex'), gen_random_uuid() FROM generate_series(1, %s) g",
            [date, rows],
        )
        cursor.execute("ANALYZE notifications_visittoken")
        cursor.execute("ANALYZE notifications_exposuretoken")


@pytest.mark.postgres
def test_publication_matching_plan_probes_the_token_hash_index_of_one_partition(published):
    _device, case_visit, date = published
    _fill_date(date, 20_000)
    plan = _explain(matching.publication_match_statement(case_visit_ids=[case_visit.pk], date=date))
    assert f"notifications_visittoken_p{date:%Y%m%d}_token_idx" in plan, plan
    assert "Seq Scan on notifications_visittoken" not in plan, plan
    assert "notifications_visittoken_default" not in plan, plan  # pruned to the date's partition


@pytest.mark.postgres
def test_sweep_plan_reads_one_partition_through_an_index(published):
    device, _case_visit, date = published
    _fill_date(date, 20_000)
    matching.uploads_backlog_add(device_id=device.pk, dates=[date])
    backlog_ids = list(UploadBacklog.objects.values_list("id", flat=True))
    plan = _explain(matching.uploads_sweep_statement(backlog_ids=backlog_ids, dates=[date]))
    # With few live exposures the planner probes the token hash per exposure; with many, it
    # reads the claimed devices' rows through the device hash. Either way: no scan of a partition.
    partition = f"notifications_visittoken_p{date:%Y%m%d}"
    assert f"{partition}_token_idx" in plan or f"{partition}_device_id_idx" in plan, plan
    assert "Seq Scan on notifications_visittoken" not in plan, plan
    assert "notifications_visittoken_default" not in plan, plan  # pruned to the batch's dates


def test_exposure_tokens_are_those_of_protocol_section_3(published):
    _device, case_visit, _date = published
    # 12:40–13:10 covers three slots (high) on one local date (one low day token).
    risks = sorted(ExposureToken.objects.filter(case_visit=case_visit).values_list("risk", flat=True))
    assert risks == ["high", "high", "high", "low"]
    stored = VisitToken.objects.count()
    assert stored == 5  # 12:05–12:50: four slots and the day token
