"""notifications.feed: the append-only exposure feed, its pages, and its ordering under concurrency."""

import datetime as dt
import secrets
import threading

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from notifications import feed
from notifications.models import Case, ExposureFeedItem, ExposureToken
from tests.phone.server import case_visit_make, venue_make


def _case_visit_with_tokens(*, slots=3, status=Case.Status.PUBLISHED, tokens=None):
    """A case visit and its exposure tokens, written directly (these tests are about the feed)."""
    visit = case_visit_make(venue=venue_make(), start=timezone.now() - dt.timedelta(hours=2), status=status)
    today = timezone.localdate()
    tokens = tokens or [(today, secrets.token_bytes(16), "high") for _ in range(slots)]
    tokens = [*tokens, (today, secrets.token_bytes(16), "low")]
    ExposureToken.objects.bulk_create(
        ExposureToken(case_visit=visit, date=date, token=token, risk=risk) for date, token, risk in tokens
    )
    return visit


def _feed():
    return [(item.date, bytes(item.token), item.risk, item.status) for item in ExposureFeedItem.objects.order_by("id")]


@pytest.mark.django_db
def test_publication_appends_each_exposure_token_once_as_active():
    visit = _case_visit_with_tokens(slots=3)
    assert feed.exposure_feed_append(case_visit_ids=[visit.pk, visit.pk], status="active") == 4
    expected = {(e.date, bytes(e.token), e.risk, "active") for e in visit.exposure_tokens.all()}
    assert set(_feed()) == expected


@pytest.mark.django_db
def test_withdrawal_skips_tokens_another_published_case_still_holds():
    shared = (timezone.localdate(), secrets.token_bytes(16), "high")
    withdrawn = _case_visit_with_tokens(slots=1, tokens=[shared, (shared[0], secrets.token_bytes(16), "high")])
    still_published = _case_visit_with_tokens(slots=1, tokens=[shared])
    feed.exposure_feed_append(case_visit_ids=[withdrawn.pk], status="active")
    feed.exposure_feed_append(case_visit_ids=[still_published.pk], status="active")
    Case.objects.filter(pk=withdrawn.case_id).update(status=Case.Status.WITHDRAWN)
    before = len(_feed())
    assert feed.exposure_feed_append(case_visit_ids=[withdrawn.pk], status="withdrawn") == 2
    appended = _feed()[before:]
    assert all(status == "withdrawn" for *_, status in appended)
    assert shared[1] not in {token for _, token, _, _ in appended}


@pytest.mark.django_db
def test_unknown_status_is_refused():
    with pytest.raises(ValueError):
        feed.exposure_feed_append(case_visit_ids=[1], status="deleted")


@pytest.mark.django_db
def test_pages_are_id_ranges_closed_once_a_later_id_exists(monkeypatch):
    monkeypatch.setattr(feed, "PAGE_SIZE", 4)
    first = _case_visit_with_tokens(slots=2)  # 3 items
    feed.exposure_feed_append(case_visit_ids=[first.pk], status="active")
    ids = list(ExposureFeedItem.objects.order_by("id").values_list("id", flat=True))
    page = feed.exposure_feed_page(ids[0] // 4)
    assert feed.exposure_feed_first_page() == ids[0] // 4
    assert [item.id for item in page.items] == [i for i in ids if i // 4 == page.number]
    last_page = feed.exposure_feed_page(ids[-1] // 4)
    # Closed only if the newest id is the page's last one; nothing lies past it yet.
    assert last_page.closed == (ids[-1] % 4 == 3)
    assert not feed.exposure_feed_page(ids[-1] // 4 + 1).closed

    second = _case_visit_with_tokens(slots=7)  # 8 more items: the page is now full and closed
    feed.exposure_feed_append(case_visit_ids=[second.pk], status="active")
    reread = feed.exposure_feed_page(last_page.number)
    assert reread.closed
    assert [item.id for item in reread.items][: len(last_page.items)] == [item.id for item in last_page.items]


@pytest.mark.django_db
def test_purge_deletes_only_old_dates():
    old = timezone.localdate() - dt.timedelta(days=40)
    visit = _case_visit_with_tokens(slots=1, tokens=[(old, secrets.token_bytes(16), "high")])
    feed.exposure_feed_append(case_visit_ids=[visit.pk], status="active")
    assert feed.exposure_feed_purge(before=timezone.localdate() - dt.timedelta(days=31), chunk=1) == 1
    assert {date for date, *_ in _feed()} == {timezone.localdate()}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_reader_never_sees_a_later_id_before_an_earlier_one_commits():
    """Two publications append concurrently; A allocates first and commits last.

    Without serialisation B's higher ids could be visible while A's lower ids are not yet,
    and a phone that read then would move its cursor past A's items for ever. With the lock,
    B waits for A's commit, so every snapshot a reader takes is a prefix of the final log.
    """
    visit_a, visit_b = _case_visit_with_tokens(slots=5), _case_visit_with_tokens(slots=5)
    a_appended, a_may_commit = threading.Event(), threading.Event()
    errors = []

    def publish(case_visit_id, appended=None, may_commit=None):
        try:
            with transaction.atomic():
                feed.exposure_feed_append(case_visit_ids=[case_visit_id], status="active")
                if appended:
                    appended.set()
                if may_commit:
                    may_commit.wait(30)
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    thread_a = threading.Thread(target=publish, args=(visit_a.pk, a_appended, a_may_commit))
    thread_a.start()
    assert a_appended.wait(30)
    thread_b = threading.Thread(target=publish, args=(visit_b.pk,))
    thread_b.start()
    _wait_until_blocked_on_advisory_lock()

    snapshots = [set(ExposureFeedItem.objects.values_list("id", flat=True))]  # A uncommitted, B waiting
    a_may_commit.set()
    thread_a.join(30)
    snapshots.append(set(ExposureFeedItem.objects.values_list("id", flat=True)))
    thread_b.join(30)
    assert not errors
    final = dict(ExposureFeedItem.objects.values_list("id", "status"))
    final_ids = set(final)
    snapshots.append(final_ids)

    assert snapshots[0] == set()
    for seen in snapshots:
        if seen:
            assert {i for i in final_ids if i <= max(seen)} == seen  # a prefix: no hole filled later
    a_ids = set(ExposureFeedItem.objects.filter(token__in=_tokens(visit_a)).values_list("id", flat=True))
    b_ids = final_ids - a_ids
    assert len(a_ids) == len(b_ids) == 6
    assert max(a_ids) < min(b_ids)


def _tokens(visit):
    return [bytes(token) for token in ExposureToken.objects.filter(case_visit=visit).values_list("token", flat=True)]


def _wait_until_blocked_on_advisory_lock():
    """Poll pg_locks until some backend waits for an advisory lock (B behind A)."""
    for _ in range(300):
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            if cursor.fetchone()[0]:
                return
        threading.Event().wait(0.05)
    raise AssertionError("the second append never waited for the first")
