"""The public exposure list: what it lists and for how long, never the case, in both languages,
as a page, JSON and CSV with ETag and cache headers."""

import csv
import datetime as dt
import io

import pytest
from django.utils import timezone

from notifications.cases import case_withdraw
from notifications.models import Case, CaseVisit
from tests.notifications.official_fixtures import draft_make, venue_with_old_code, yesterday_at


@pytest.fixture
def published(db):
    venue = venue_with_old_code(
        name_en="Lucky Noodle House", name_zh="好運麵家", district="yau-tsim-mong", address_en="1 Nathan Road"
    )
    case = draft_make(venue, reference="HK-SECRET-REF")
    Case.objects.filter(pk=case.pk).update(
        status=Case.Status.PUBLISHED, published_at=timezone.now(), message_en="The case is a chef, 34."
    )
    case.refresh_from_db()
    return case


def _items(client, query=""):
    return client.get(f"/exposures.json{query}").json()["items"]


def test_a_published_visit_is_listed_with_its_window_and_advice(client, published):
    (item,) = _items(client)
    day = yesterday_at(12).date().isoformat()
    assert item["venue"] == {"en": "Lucky Noodle House", "zh": "好運麵家"}
    assert item["district"] == {"slug": "yau-tsim-mong", "en": "Yau Tsim Mong", "zh": item["district"]["zh"]}
    assert item["district"]["zh"] != "Yau Tsim Mong"
    assert item["date"] == day
    assert item["window"] == {"start": f"{day}T12:00:00+08:00", "end": f"{day}T12:30:00+08:00"}
    assert "Lucky Noodle House" in item["advice"]["en"] and "好運麵家" in item["advice"]["zh"]


def test_nothing_about_the_case_is_shown(client, published):
    for path in ("/exposures/", "/exposures.json", "/exposures.csv"):
        body = client.get(path).content.decode()
        assert "Lucky Noodle House" in body
        assert "HK-SECRET-REF" not in body and "chef" not in body


def test_hidden_draft_and_withdrawn_visits_are_not_listed(client, published):
    venue = published.visits.get().venue
    assert len(_items(client)) == 1
    CaseVisit.objects.filter(case=published).update(public=False)
    assert _items(client) == []
    CaseVisit.objects.filter(case=published).update(public=True)
    draft_make(venue, reference="HK-DRAFT")
    assert len(_items(client)) == 1
    case_withdraw(case=published, actor=None)
    assert _items(client) == []


def test_entries_leave_after_the_configured_days(client, published, settings):
    settings.PUBLIC_EXPOSURE_LIST_DAYS = 2
    assert len(_items(client)) == 1
    CaseVisit.objects.filter(case=published).update(
        start=timezone.now() - dt.timedelta(days=3, hours=1), end=timezone.now() - dt.timedelta(days=3)
    )
    assert _items(client) == []
    assert client.get("/exposures.json").json()["days"] == 2


def test_the_list_is_searchable_by_district(client, published):
    other = venue_with_old_code(name_en="Sha Tin Cafe", name_zh="沙田茶餐廳", district="sha-tin")
    draft = draft_make(other, reference="HK-2")
    Case.objects.filter(pk=draft.pk).update(status=Case.Status.PUBLISHED)
    assert len(_items(client)) == 2
    assert [item["venue"]["en"] for item in _items(client, "?district=sha-tin")] == ["Sha Tin Cafe"]
    page = client.get("/exposures/?district=sha-tin").content.decode()
    assert "Sha Tin Cafe" in page and "Lucky Noodle House" not in page
    assert len(_items(client, "?district=nowhere")) == 2  # an unknown district filters nothing


def test_json_and_csv_have_an_etag_and_cache_headers(client, published):
    for path in ("/exposures.json", "/exposures.csv"):
        first = client.get(path)
        assert first["Cache-Control"] == "public, max-age=300"
        assert first["ETag"].startswith('"')
        assert client.get(path, headers={"if-none-match": first["ETag"]}).status_code == 304
        CaseVisit.objects.filter(case=published).update(padding_minutes=5 + CaseVisit.objects.get().padding_minutes)
        changed = client.get(path, headers={"if-none-match": first["ETag"]})
        assert changed.status_code == 200 and changed["ETag"] != first["ETag"]


def test_the_csv_is_formula_safe(client, published):
    venue = published.visits.get().venue
    venue.name_en = '=HYPERLINK("http://evil.example")'
    venue.save()
    rows = list(csv.reader(io.StringIO(client.get("/exposures.csv").content.decode().lstrip("\ufeff"))))
    assert rows[0][:5] == ["date", "start", "end", "venue_en", "venue_zh"]
    assert rows[1][3] == '\'=HYPERLINK("http://evil.example")'


def test_the_page_is_in_both_languages(client, published):
    english = client.get("/exposures/", headers={"accept-language": "en"}).content.decode()
    assert "Venues visited by confirmed cases" in english and "Yau Tsim Mong" in english
    chinese = client.get("/exposures/", headers={"accept-language": "zh-hant"}).content.decode()
    assert "確診者曾到訪的場所" in chinese and "油尖旺" in chinese
    assert "您於" in chinese  # the advice in Chinese


def test_the_list_is_throttled_per_address(client, published, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "public_list_ip": "2/day"},
    }
    # A day's window: the three requests cannot straddle a window boundary in practice.
    address = {"REMOTE_ADDR": "203.0.113.77"}
    assert [client.get("/exposures.json", **address).status_code for _ in range(2)] == [200, 200]
    refused = client.get("/exposures.csv", **address)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert client.get("/exposures.json", REMOTE_ADDR="203.0.113.78").status_code == 200
