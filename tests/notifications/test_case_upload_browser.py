"""End to end in a real browser: an official issues an upload code, the case's phone uploads,
the official reviews and publishes, and the phones that were there are notified as the
PROTOCOL §2–3 oracle says."""

import datetime as dt
import importlib
from zoneinfo import ZoneInfo

import httpx
import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from leavehome.models import AuditEntry
from notifications.models import Case, CaseVisit
from tests import phone
from tests.notifications.test_matching import oracle
from tests.phone.server import venue_make, venue_qr_text
from venues.services import venue_code_regenerate

ZONE = ZoneInfo(settings.TIME_ZONE)
PASSWORD = "contact-tracing-at-dawn-77"


def _officials_group():
    """The group as migrations 0006 and 0008 make it (a transactional test's flush empties it)."""
    importlib.import_module("notifications.migrations.0006_case_publish_permission_health_officials").create_group(
        django_apps, None
    )
    importlib.import_module("notifications.migrations.0008_case_upload").grant_officials(django_apps, None)
    return Group.objects.get(name="Health officials")


def _at(day: dt.date, hour: int, minute: int = 0) -> int:
    return int(dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZONE).timestamp())


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_uploaded_history_is_reviewed_published_and_notified(page, live_server, settings, request):
    settings.SITE_URL = live_server.url
    official = get_user_model().objects.create_user(username="tracer", password=PASSWORD, is_staff=True)
    official.groups.add(_officials_group())
    noodles = venue_make(name_en="Lucky Noodle House", name_zh="好運麵家", district="yau-tsim-mong")
    gym = venue_make(name_en="Harbour Gym", name_zh="海港健身室", district="wan-chai")
    cinema = venue_make(name_en="Star Cinema", name_zh="星光戲院", district="sha-tin")
    texts = {venue.pk: venue_qr_text(venue, issued_days_ago=20) for venue in (noodles, gym, cinema)}
    case = Case.objects.create(reference="HK-2026-0420", confirmed_on=timezone.localdate())
    yesterday, before = timezone.localdate() - dt.timedelta(days=1), timezone.localdate() - dt.timedelta(days=2)

    http = httpx.Client(base_url=live_server.url)
    request.addfinalizer(http.close)  # a kept-alive connection holds a server thread and its database session
    # The case's phone and five others scan the posters and keep their visits.
    case_phone = phone.Phone(http)
    case_phone.fetch_config()
    codes = {venue_id: case_phone.scan(text) for venue_id, text in texts.items()}
    case_visits = [
        (noodles.pk, _at(yesterday, 12, 0), _at(yesterday, 12, 45)),
        (gym.pk, _at(yesterday, 19, 0), _at(yesterday, 20, 0)),
        (cinema.pk, _at(before, 13, 0), _at(before, 13, 30)),
    ]
    for venue_id, t_in, t_out in case_visits:
        case_phone.check_in(codes[venue_id], t_in, t_out)
    others_visits = [
        (noodles.pk, _at(yesterday, 12, 30), _at(yesterday, 13, 0)),  # shares slots: high
        (noodles.pk, _at(yesterday, 15, 0), _at(yesterday, 16, 0)),  # the same day only: low
        (gym.pk, _at(yesterday, 20, 5), _at(yesterday, 20, 30)),  # high only with the padding added
        (cinema.pk, _at(before, 13, 10), _at(before, 13, 20)),  # high, on the code since regenerated
        (cinema.pk, _at(yesterday, 13, 10), _at(yesterday, 13, 20)),  # another day: nothing
    ]
    others = []
    for venue_id, t_in, t_out in others_visits:
        other = phone.Phone(http)
        other.register()
        other.check_in(other.scan(texts[venue_id]), t_in, t_out)
        assert other.upload() > 0
        others.append(other)
    venue_code_regenerate(venue=cinema)  # the case's cinema code is now revoked

    # The official issues a code on the case page; it is shown once.
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", "tracer")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    case_url = f"{live_server.url}/admin/notifications/case/{case.pk}/change/"
    page.goto(case_url)
    page.click("#issue-upload-code")
    code = page.inner_text("#upload-code")
    assert len(code) == 11 and code[5] == "-"
    assert "HKT" in page.inner_text("#content-main")  # the expiry, in local time with its zone

    assert case_phone.upload_as_case(code.lower()) == 3  # as typed, lower case

    page.goto(case_url)
    proposed = page.inner_text("#proposed-visits")
    assert "Lucky Noodle House / 好運麵家" in proposed and "Wan Chai" in proposed
    assert f"{yesterday:%Y-%m-%d} 19:00 HKT" in proposed
    # Review: pad the gym visit by 15 minutes, save, then accept all.
    in_page_order = list(case.visits.order_by("start").values_list("venue_id", flat=True))
    index = in_page_order.index(gym.pk)
    page.fill(f"input[name=visits-{index}-padding_minutes]", "15")
    page.click("input[name=_continue]")
    page.wait_for_selector("#accept-uploaded-visits")
    page.click("#accept-uploaded-visits")
    page.wait_for_selector("text=3 uploaded visits accepted.")
    assert not case.visits.filter(review=CaseVisit.Review.PROPOSED).exists()

    # Publish through the usual action on the case list.
    page.goto(f"{live_server.url}/admin/notifications/case/")
    page.check(f"input[name=_selected_action][value='{case.pk}']")
    page.select_option("select[name=action]", "publish")
    page.click("button[name=index]")
    page.wait_for_selector("text=1 case queued for publication.")
    case.refresh_from_db()
    assert case.status == Case.Status.PUBLISHED

    published = [
        (visit.pk, visit.venue_id, *(int(t.timestamp()) for t in _padded(visit))) for visit in case.visits.all()
    ]
    expected = oracle(
        [(n, venue_id, t_in, t_out) for n, (venue_id, t_in, t_out) in enumerate(others_visits)], published
    )
    # One case visit per venue here, so a notification's venue names its case visit.
    visit_of_venue = {str(visit.venue_id): visit.pk for visit in case.visits.all()}
    seen = {
        (n, visit_of_venue[item["venue"]["sub"]], item["risk"])
        for n, other in enumerate(others)
        for item in other.poll()
    }
    assert seen == expected
    assert {risk for _, _, risk in expected} == {"high", "low"}
    assert len(expected) == 4
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {
        "case_upload_code.issue",
        "case_upload_code.consume",
        "case.accept_uploaded_visits",
        "case.publish",
    } <= actions


def _padded(visit):
    padding = dt.timedelta(minutes=visit.padding_minutes)
    return visit.start - padding, visit.end + padding
