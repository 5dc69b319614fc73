"""Dates and numbers from input are read in ASCII digits only (leavehome/digits.py).

Arabic-Indic (U+0660…) and full-width (U+FF10…) digits pass ``\\d`` and ``int()``; every
place that reads a date or a number from a request refuses them.
"""

import datetime as dt
import json

import httpx
import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from leavehome.digits import is_ascii_digits
from leavehome.lib.b64u import b64u_encode
from notifications.admin import CaseVisitForm
from notifications.models import VisitToken
from notifications.push.transports import retry_after_seconds
from tests.phone.server import bearer, device_with_secret

pytestmark = pytest.mark.django_db

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.fixture
def client():
    cache.clear()  # throttle counters
    return Client()


@pytest.fixture
def secret():
    return device_with_secret()[1]


def test_only_0_to_9_are_digits():
    assert is_ascii_digits("2026")
    assert not is_ascii_digits("")
    assert not is_ascii_digits("²")  # str.isdigit() says yes, int() says no
    assert not is_ascii_digits("٢٠٢٦")
    assert not is_ascii_digits("-1")


@pytest.mark.parametrize("digits", [ARABIC_INDIC, FULL_WIDTH], ids=["arabic-indic", "full-width"])
def test_a_visit_date_in_other_digits_is_refused(client, secret, digits):
    date = timezone.localdate().isoformat().translate(digits)
    body = {"days": [{"date": date, "tokens": [b64u_encode(b"\x01" * 16)]}]}
    response = client.post("/api/v1/visits", json.dumps(body), content_type="application/json", **bearer(secret))
    assert response.status_code == 400
    assert "days.0.date" in response.json()["error"]["fields"]
    assert not VisitToken.objects.exists()


@pytest.mark.parametrize("digits", [ARABIC_INDIC, FULL_WIDTH], ids=["arabic-indic", "full-width"])
def test_a_notifications_cursor_in_other_digits_is_refused(client, secret, digits):
    since = "2026-11-23T04:00:00Z".translate(digits)
    response = client.get("/api/v1/notifications", {"since": since}, **bearer(secret))
    assert response.status_code == 400
    assert "since" in response.json()["error"]["fields"]


def test_an_exposure_page_in_other_digits_is_refused(client):
    response = client.get("/api/v1/exposures", {"page": "3".translate(ARABIC_INDIC)})
    assert response.status_code == 400
    assert "page" in response.json()["error"]["fields"]


def test_a_case_visit_padding_in_other_digits_is_refused():
    start = timezone.localtime().replace(microsecond=0) - dt.timedelta(hours=3)
    form = CaseVisitForm(
        {
            "start_0": start.date().isoformat(),
            "start_1": start.time().isoformat(),
            "end_0": start.date().isoformat(),
            "end_1": (start + dt.timedelta(hours=1)).time().isoformat(),
            "padding_minutes": "15".translate(ARABIC_INDIC),
        }
    )
    assert "padding_minutes" in form.errors


def test_a_venue_list_page_in_other_digits_shows_the_first_page(client, monkeypatch):
    from tests.venues.conftest import _owner
    from venues.keys import signing_key_create
    from venues.services import venue_register

    monkeypatch.setattr("venues.views.VENUES_PER_PAGE", 1)
    signing_key_create()
    owner = _owner("owner@example.com")
    for name in ("First", "Second"):
        venue_register(owner=owner, name_en=name, name_zh=name, category="retail")
    client.force_login(owner)
    response = client.get(reverse("venues:list"), {"page": "2".translate(ARABIC_INDIC)})
    assert response.context["page"].number == 1


@pytest.mark.parametrize("value", ["nan", "inf", "1e3", "١٢٠"])
def test_a_push_services_retry_after_is_delta_seconds_or_a_date(value):
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": value.encode()})) is None
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": "120"})) == 120
