"""Cluster candidates: venues two or more distinct cases visited, with their windows and overlap."""

import csv
import datetime as dt
import io

from django.urls import reverse

from notifications.models import Case, CaseVisit
from notifications.official_selectors import cluster_candidates
from tests.notifications.official_fixtures import draft_make, venue_with_old_code, yesterday_at


def _shared_venue_scene():
    shared = venue_with_old_code(name_en="Lucky Noodle House", name_zh="好運麵家", district="yau-tsim-mong")
    alone = venue_with_old_code(name_en="Quiet Tea House", name_zh="靜茶館")
    first = draft_make(shared, reference="HK-A", start=yesterday_at(12), minutes=60)
    second = draft_make(shared, reference="HK-B", start=yesterday_at(12, 30), minutes=60)
    lone = draft_make(alone, reference="HK-C")
    # One case visiting the same venue twice is not a cluster.
    CaseVisit.objects.create(case=lone, venue=alone, start=yesterday_at(18), end=yesterday_at(19))
    return shared, first, second


def test_a_venue_two_cases_visited_is_a_candidate_with_its_overlap(db):
    shared, _, second = _shared_venue_scene()
    (cluster,) = cluster_candidates(days=14)
    assert cluster.venue == shared
    assert [case.reference for case in cluster.cases] == ["HK-A", "HK-B"]
    assert cluster.overlapping  # 12:00–13:00 and 12:30–13:30

    CaseVisit.objects.filter(case=second).update(start=yesterday_at(14), end=yesterday_at(15))
    (cluster,) = cluster_candidates(days=14)
    assert not cluster.overlapping


def test_withdrawn_cases_and_old_visits_do_not_count(db):
    *_, second = _shared_venue_scene()
    Case.objects.filter(pk=second.pk).update(status=Case.Status.WITHDRAWN)
    assert cluster_candidates(days=14) == []
    Case.objects.filter(pk=second.pk).update(status=Case.Status.PUBLISHED)
    CaseVisit.objects.filter(case=second).update(start=yesterday_at(12) - dt.timedelta(days=5))
    assert cluster_candidates(days=3) == []
    assert len(cluster_candidates(days=14)) == 1


def test_the_order_is_chosen(db):
    _shared_venue_scene()
    other = venue_with_old_code(name_en="Alpha Bakery", name_zh="阿爾法餅店")
    for reference in ("HK-D", "HK-E", "HK-F"):
        draft_make(other, reference=reference, start=yesterday_at(8))
    names = ["Alpha Bakery", "Lucky Noodle House"]
    assert [c.venue.name_en for c in cluster_candidates(days=14, order="cases")] == names
    assert [c.venue.name_en for c in cluster_candidates(days=14, order="venue")] == names
    assert [c.venue.name_en for c in cluster_candidates(days=14, order="latest")] == [
        "Lucky Noodle House",
        "Alpha Bakery",
    ]


def test_the_page_links_venue_and_cases_and_exports_formula_safe_csv(official_client, django_assert_max_num_queries):
    shared, first, second = _shared_venue_scene()
    shared.name_en = "=cmd|' /C calc'!A0"
    shared.save()
    url = reverse("admin:notifications_clusters")
    with django_assert_max_num_queries(12):  # session, user, permissions, and two for the figures
        page = official_client.get(url, {"days": 7, "o": "overlap"})
    body = page.content.decode()
    assert reverse("admin:venues_venue_change", args=[shared.pk]) in body
    assert reverse("admin:notifications_case_change", args=[first.pk]) in body
    assert reverse("admin:notifications_case_change", args=[second.pk]) in body
    assert 'class="case-count">2<' in body

    export = official_client.get(url, {"days": 7, "format": "csv"})
    assert export["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.content.decode().lstrip("\ufeff"))))
    assert [row["case"] for row in rows] == ["HK-A", "HK-B"]
    assert {row["venue_en"] for row in rows} == {"'=cmd|' /C calc'!A0"}
    assert {row["overlapping"] for row in rows} == {"yes"}


def test_the_page_needs_the_view_permission(client, db):
    from tests.notifications.official_fixtures import staff_make

    client.force_login(staff_make("someone"))
    assert client.get(reverse("admin:notifications_clusters")).status_code == 403
