"""Fault drills on real services: a whole worker dying mid-publication, a push service down.

Slow: each starts worker processes and waits for them; run in CI with the rest of the suite.
"""

import datetime as dt
import os
import signal
import threading
import time

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction
from django.utils import timezone

from notifications.devices import device_register
from notifications.models import Case, CaseVisit, Device, Notification, PushDelivery, VisitToken
from notifications.partitions import visit_token_partitions_ensure
from notifications.push.tasks import push_later
from notifications.tasks import case_publish_and_match
from tests.conftest import workers_on
from tests.deploy.test_faults import private_redis
from tests.deploy.test_topology import RABBITMQ_URL, Processes, _free_port
from tests.notifications.push_fixtures import device_with_channel, fcm_token, notifications_for
from tests.notifications.push_peers import FcmPeer
from tests.notifications.test_matching_worker import ZONE, _matching_statement_waits_on_a_lock, _wait_for
from tests.phone.derivation import visit_tokens
from venues.keys import signing_key_create
from venues.keystore import vk_decrypt
from venues.models import VenueCode
from venues.services import venue_register

pytestmark = [pytest.mark.postgres, pytest.mark.broker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DATES, DEVICES = 10, 200
# The drill's promise: everything notified within two minutes of the worker's restart.
RECOVERY_SECONDS = 120


@pytest.fixture
def big_case():
    """DEVICES phones that all visited one venue at noon on each of DATES days; a draft case there."""
    signing_key_create()
    owner = get_user_model().objects.create_user(username="owner", password="irrelevant 12345")
    venue = venue_register(owner=owner, name_en="Drill Hall", name_zh="演習廳", category="catering")
    VenueCode.objects.filter(venue=venue).update(issued_at=timezone.now() - dt.timedelta(days=60))
    vk = vk_decrypt(venue.codes.get())
    devices = [device_register()[0] for _ in range(DEVICES)]
    case = Case.objects.create(reference="DRILL-1", confirmed_on=timezone.localdate())
    rows = []
    for days_ago in range(1, DATES + 1):
        noon = dt.datetime.combine(timezone.localdate() - dt.timedelta(days=days_ago), dt.time(12), tzinfo=ZONE)
        visit_token_partitions_ensure([noon.date()])
        CaseVisit.objects.create(case=case, venue=venue, start=noon, end=noon + dt.timedelta(hours=1))
        start = int(noon.timestamp()) + 600
        for date, tokens in visit_tokens(vk, start, start + 1200, settings.TIME_ZONE).items():
            rows += [VisitToken(date=date, token=token, device=device) for device in devices for token in tokens]
    VisitToken.objects.bulk_create(rows)
    return case


@pytest.fixture
def notification_table_held():
    """Hold a lock on the notification table until the test lets go: the first matching
    statement blocks, so a worker can be killed while it is surely mid-publication."""
    locked, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("LOCK TABLE notifications_notification IN EXCLUSIVE MODE")
                locked.set()
                release.wait(RECOVERY_SECONDS)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(60)
    yield release
    release.set()
    holder.join(60)


@pytest.mark.parametrize(
    ("broker_url", "extra_env"),
    [
        (RABBITMQ_URL, {}),
        # Redis hands an unacknowledged message back only after the visibility timeout.
        (os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15"), {"CELERY_VISIBILITY_TIMEOUT": "30"}),
    ],
    ids=["rabbitmq", "redis-30s-visibility"],
)
def test_a_whole_worker_killed_mid_publication_loses_and_repeats_nothing(
    settings, big_case, notification_table_held, broker_url, extra_env
):
    with workers_on(broker_url, settings, **extra_env) as start_worker:
        worker = start_worker()
        case_publish_and_match(case=big_case, actor=None)  # DATES tasks, one per date
        _wait_for(_matching_statement_waits_on_a_lock, "the first matching statement to block", 60)
        # The whole worker, main process and pool, at once: no chance to hand anything back.
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
        notification_table_held.set()

        start_worker()
        expected = DATES * DEVICES
        _wait_for(lambda: Notification.objects.count() >= expected, f"{expected} notifications", RECOVERY_SECONDS)
        # Settle: a late duplicate run would show now (the unique key makes it add nothing).
        time.sleep(2)
    pairs = set(Notification.objects.values_list("device_id", "case_visit_id"))
    assert Notification.objects.count() == len(pairs) == expected
    assert {device for device, _ in pairs} == set(Device.objects.values_list("pk", flat=True))


def test_a_push_service_down_for_many_retries_then_back_delivers_each_push_once(worker_push_env, live_worker):
    """FCM answers 503 to every push for six rounds of backoff, then recovers."""
    fcm_peer = worker_push_env
    outage = [(503, FcmPeer.error(503, "UNAVAILABLE"), None)] * 6
    tokens = [fcm_token(n) for n in range(20)]
    for token in tokens:
        fcm_peer.script(token, outage)
    # One phone's outage outlasts every attempt allowed: that push gives up, the phone polls.
    fcm_peer.script(fcm_token(99), outage * 2)
    devices = [device_with_channel({"kind": "fcm", "token": token}) for token in [*tokens, fcm_token(99)]]
    notifications = notifications_for(devices)
    with transaction.atomic():
        push_later(notification_ids=[notification.id for notification in notifications])

    def settled():
        # The worker creates the deliveries: none yet is not "settled".
        return (
            PushDelivery.objects.count() == len(devices)
            and not PushDelivery.objects.exclude(
                status__in=[PushDelivery.Status.DELIVERED, PushDelivery.Status.FAILED]
            ).exists()
        )

    _wait_for(settled, "every push delivered or given up", RECOVERY_SECONDS)
    for token in tokens:
        answers = [received.status for received in fcm_peer.for_address(token)]
        assert answers == [503] * 6 + [200], token  # delivered once, after the outage
    assert PushDelivery.objects.filter(status=PushDelivery.Status.DELIVERED).count() == len(tokens)
    given_up = PushDelivery.objects.get(status=PushDelivery.Status.FAILED)
    assert given_up.attempts == settings.PUSH_MAX_ATTEMPTS
    assert len(fcm_peer.for_address(fcm_token(99))) == settings.PUSH_MAX_ATTEMPTS
    assert Notification.objects.filter(pk=given_up.notification_id).exists()  # still there to poll
    assert fcm_peer.problems == []


def test_the_broker_restarted_mid_publication_loses_and_repeats_nothing(
    settings, tmp_path, big_case, notification_table_held
):
    """A private Redis broker (persisted, as a production Redis broker must be) is stopped
    while the worker is inside the first of the publication's tasks, then started again."""
    processes = Processes(tmp_path)
    port = _free_port()
    try:
        broker = private_redis(processes, port, directory=tmp_path)
        with workers_on(f"redis://127.0.0.1:{port}/0", settings, CELERY_VISIBILITY_TIMEOUT="30") as start_worker:
            start_worker()
            case_publish_and_match(case=big_case, actor=None)
            _wait_for(_matching_statement_waits_on_a_lock, "the first matching statement to block", 60)
            broker.terminate()
            broker.wait(30)
            notification_table_held.set()  # the first task finishes while the broker is away
            private_redis(processes, port, directory=tmp_path)
            expected = DATES * DEVICES
            _wait_for(lambda: Notification.objects.count() >= expected, f"{expected} notifications", RECOVERY_SECONDS)
            time.sleep(2)
    finally:
        processes.stop_all()
    pairs = set(Notification.objects.values_list("device_id", "case_visit_id"))
    assert Notification.objects.count() == len(pairs) == DATES * DEVICES
