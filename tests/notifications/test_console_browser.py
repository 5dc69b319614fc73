"""Health officials and the public in a real browser (Debian's chromium through Playwright).

The screenshots in docs/screenshots/ are made here, so they show the console as it is.
"""

import csv
import datetime as dt
import io
import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from notifications.models import Case, CaseVisit, Notification
from notifications.safety import kill_switch_is_on
from notifications.tasks import case_publish_and_match
from tests.conftest import CHROMIUM_ARGS
from tests.notifications.official_fixtures import (
    devices_at_venue,
    draft_make,
    official_make,
    venue_with_old_code,
    yesterday_at,
)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser():
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls would
    # otherwise be refused as "async unsafe".
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SCREENSHOTS.mkdir(exist_ok=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def _page_as(browser, live_server, user, *, viewport=DESKTOP, locale="en-GB"):
    """A browser page logged in as ``user`` (the session cookie of a test client's login)."""
    context = browser.new_context(locale=locale, viewport=viewport, timezone_id="Europe/London")
    if user is not None:
        client = Client()
        client.force_login(user)
        cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
        context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations of Withdraw, Approve, Pause
    return page


def _case_page(live_server, case):
    return f"{live_server.url}/admin/notifications/case/{case.pk}/change/"


def test_a_zero_token_visit_is_a_blocking_warning_and_nothing_is_published(browser, live_server):
    venue = venue_with_old_code()
    case = draft_make(venue, reference="HK-ZERO")
    venue.codes.update(issued_at=CaseVisit.objects.get(case=case).end)  # issued as the window ended
    page = _page_as(browser, live_server, official_make("official"))
    page.goto(_case_page(live_server, case))
    assert "no phone can be told" in page.inner_text("#zero-token-warning")
    assert page.get_attribute("#case-preview tbody tr", "data-exposure-tokens") == "0"
    assert page.is_disabled("#case-publish")

    # The list's action menu is refused by the service too.
    page.goto(f"{live_server.url}/admin/notifications/case/")
    page.check(f"input[name=_selected_action][value='{case.pk}']")
    page.select_option("select[name=action]", "publish")
    page.click("button[name=index]")
    assert "no phone can be told" in page.inner_text("ul.messagelist")
    assert Case.objects.get(pk=case.pk).status == Case.Status.DRAFT


def test_a_published_case_is_read_only_with_publish_and_withdraw_on_its_page(browser, live_server):
    venue = venue_with_old_code()
    case = draft_make(venue, reference="HK-PAGE")
    devices_at_venue(venue, 1)
    page = _page_as(browser, live_server, official_make("official"))
    page.goto(_case_page(live_server, case))
    assert page.inner_text("#case-preview tbody tr td:nth-child(2)").endswith("HKT")  # local time, zone named
    assert "Lucky Noodle House" in page.inner_text("#case-preview")
    page.click("#case-publish")
    page.wait_for_selector("ul.messagelist")
    assert Case.objects.get(pk=case.pk).status == Case.Status.PUBLISHED
    assert Notification.objects.count() == 1

    page.goto(_case_page(live_server, case))
    assert page.locator("input[name=_save], input[name=_continue], input[name=_addanother]").count() == 0
    assert page.locator("#case-publish").count() == 0
    page.click("#case-withdraw")
    page.wait_for_selector("ul.messagelist")
    assert Case.objects.get(pk=case.pk).status == Case.Status.WITHDRAWN
    assert Notification.objects.get().status == "withdrawn"


def test_above_the_threshold_a_second_official_approves(browser, live_server, settings):
    settings.PUBLICATION_APPROVAL_THRESHOLD = 1
    venue = venue_with_old_code()
    case = draft_make(venue, reference="HK-BIG")
    devices_at_venue(venue, 2)
    first = _page_as(browser, live_server, official_make("first"))
    first.goto(_case_page(live_server, case))
    first.click("#case-publish")
    first.wait_for_selector("ul.messagelist")
    first.goto(_case_page(live_server, case))
    assert "about 2 devices" in first.inner_text("#approval-needed")
    assert first.locator("#case-approve").count() == 0  # not the one who asked
    assert not Notification.objects.exists()

    second = _page_as(browser, live_server, official_make("second"))
    second.goto(_case_page(live_server, case))
    second.click("#case-approve")
    second.wait_for_selector("ul.messagelist")
    case.refresh_from_db()
    assert case.status == Case.Status.PUBLISHED and case.approved_by.username == "second"
    assert Notification.objects.count() == 2


def test_the_kill_switch_holds_a_publication_until_it_is_off(browser, live_server):
    venue = venue_with_old_code()
    case = draft_make(venue, reference="HK-HELD")
    devices_at_venue(venue, 1)
    page = _page_as(browser, live_server, official_make("operator", permissions=["operate_kill_switch"]))
    page.goto(f"{live_server.url}/admin/notifications/case/kill-switch/")
    page.fill("input[name=reason]", "Lab sent the wrong list")
    page.click("#kill-switch-on")
    page.wait_for_selector("#kill-switch-banner")
    assert kill_switch_is_on()

    page.goto(_case_page(live_server, case))
    assert "Lab sent the wrong list" in page.inner_text("#kill-switch-banner")
    page.click("#case-publish")
    page.wait_for_selector("ul.messagelist")
    assert not Notification.objects.exists()
    assert Case.objects.get(pk=case.pk).status == Case.Status.DRAFT

    page.goto(f"{live_server.url}/admin/notifications/case/kill-switch/")
    page.click("#kill-switch-off")
    page.wait_for_selector("ul.messagelist")
    assert page.locator("#kill-switch-banner").count() == 0
    assert Case.objects.get(pk=case.pk).status == Case.Status.PUBLISHED
    assert Notification.objects.count() == 1


def _two_cases_at_one_venue():
    shared = venue_with_old_code(name_en="Lucky Noodle House", name_zh="好運麵家", district="yau-tsim-mong")
    devices_at_venue(shared, 2)
    first = draft_make(shared, reference="HK-A", start=yesterday_at(12), minutes=60)
    second = draft_make(shared, reference="HK-B", start=yesterday_at(12, 30), minutes=60)
    for case in (first, second):
        case_publish_and_match(case=case, actor=None)
    return shared, first, second


def test_the_dashboard_draws_its_charts_with_data(browser, live_server):
    _two_cases_at_one_venue()
    page = _page_as(browser, live_server, official_make("official"))
    page.goto(f"{live_server.url}/admin/notifications/case/dashboard/")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-notifications'))")
    high = page.evaluate("Chart.getChart(document.getElementById('chart-notifications')).data.datasets[0].data")
    assert high[-1] == 4  # two devices, two cases, all in the same slots
    for chart in ("chart-cases", "chart-push", "chart-lag", "chart-tokens"):
        assert page.evaluate(f"!!Chart.getChart(document.getElementById('{chart}'))")
    assert page.evaluate("Chart.getChart(document.getElementById('chart-lag')).data.labels") == ["HK-A", "HK-B"]
    page.screenshot(path=SCREENSHOTS / "console-dashboard.png", full_page=True)


def test_the_cluster_view_lists_a_venue_two_cases_visited(browser, live_server):
    shared, first, _ = _two_cases_at_one_venue()
    page = _page_as(browser, live_server, official_make("official"))
    page.goto(f"{live_server.url}/admin/notifications/case/clusters/")
    row = page.locator(f"tr.cluster[data-venue='{shared.pk}']")
    assert row.locator(".case-count").inner_text() == "2"
    assert row.locator(".overlap").inner_text() == "yes"
    assert row.locator("a", has_text="HK-A").get_attribute("href").endswith(f"/case/{first.pk}/change/")
    page.screenshot(path=SCREENSHOTS / "console-clusters.png", full_page=True)
    with page.expect_download() as download:
        page.click("#cluster-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig"))))
    assert [row["case"] for row in rows] == ["HK-A", "HK-B"]


def test_the_public_list_in_both_languages_with_its_json_and_csv(browser, live_server):
    _two_cases_at_one_venue()
    other = venue_with_old_code(name_en="Sha Tin Cafe", name_zh="沙田茶餐廳", district="sha-tin")
    case_publish_and_match(case=draft_make(other, reference="HK-C"), actor=None)
    page = _page_as(browser, live_server, None, viewport=PHONE)
    page.goto(f"{live_server.url}/exposures/")
    assert page.inner_text("h1") == "Venues visited by confirmed cases"
    assert page.locator("#exposures li").count() == 3
    assert "HK-A" not in page.content()  # nothing about the cases
    page.select_option("#district", "sha-tin")
    page.click(".filter button[type=submit]")
    page.wait_for_url("**district=sha-tin")
    assert page.locator("#exposures li").count() == 1 and "Sha Tin Cafe" in page.inner_text("#exposures")
    page.goto(f"{live_server.url}/exposures/")
    page.screenshot(path=SCREENSHOTS / "public-exposures-en.png", full_page=True)

    page.click("button[name=language][value=zh-hant]")
    page.wait_for_selector("h1:has-text('確診者曾到訪的場所')")
    assert "油尖旺" in page.inner_text("#exposures")
    page.screenshot(path=SCREENSHOTS / "public-exposures-zh.png", full_page=True)

    answer = page.request.get(f"{live_server.url}/exposures.json")
    assert answer.ok and answer.headers["cache-control"] == "public, max-age=300"
    assert len(answer.json()["items"]) == 3
    again = page.request.get(f"{live_server.url}/exposures.json", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status == 304
    table = page.request.get(f"{live_server.url}/exposures.csv")
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.body().decode("utf-8-sig"))))
    assert {row["venue_zh"] for row in rows} == {"好運麵家", "沙田茶餐廳"}


def test_the_time_widgets_fill_in_local_time_whatever_the_browsers_zone(browser, live_server):
    page = _page_as(browser, live_server, official_make("official"))  # the browser runs in London
    page.goto(f"{live_server.url}/admin/notifications/case/add/")
    field = "#id_visits-0-start_1"
    assert "Local time (HKT, UTC+08:00)." in page.content()  # the column's help text
    assert page.locator(".timezonewarning").first.is_hidden()  # no "hours behind server time"
    page.click(".field-start .datetimeshortcuts a:has-text('Now')")
    filled = page.input_value(field)
    hong_kong = timezone.localtime()
    assert filled[:2] in {f"{hong_kong:%H}", f"{hong_kong + dt.timedelta(minutes=1):%H}"}
