"""An admin that cannot mislead: previews before publishing, read-only published cases, local
times with their zone, venue names, honest dashboard figures, one-step two-factor login."""

import datetime as dt

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from leavehome.admin import OneStepOTPAdminAuthenticationForm
from notifications.devices import device_register
from notifications.models import Case, CaseVisit, VisitToken
from notifications.official_selectors import VISIT_TOKENS_EXACT_UP_TO, case_previews, visit_tokens_figure
from tests.notifications.official_fixtures import PASSWORD, draft_make, official_make, staff_make, yesterday_at
from venues.models import VenueCode


def test_the_preview_counts_code_versions_and_tokens_of_each_visit(official_client, draft, venue):
    # 12:00–12:30 covers two slots on one date; a second code version issued later still covers it.
    VenueCode.objects.create(
        venue=venue, version=2, vk_encrypted=b"", signing_key=venue.codes.get().signing_key, issued_at=yesterday_at(9)
    )
    (preview,) = case_previews(draft)
    assert preview.code_versions == [1, 2]
    assert (preview.high_tokens, preview.low_tokens) == (4, 2)

    page = official_client.get(reverse("admin:notifications_case_change", args=[draft.pk])).content.decode()
    assert 'data-exposure-tokens="6"' in page
    assert "v1, v2" in page
    assert "Lucky Noodle House" in page
    assert "zero-token-warning" not in page


@pytest.fixture
def zero_token_draft(venue):
    """A window that ends before the venue's only code was issued: it would produce no token."""
    venue.codes.update(issued_at=timezone.now() - dt.timedelta(hours=1))
    return draft_make(venue, reference="HK-ZERO")


def test_a_visit_that_would_produce_no_token_blocks_publication(
    official_client, zero_token_draft, django_capture_on_commit_callbacks
):
    page = official_client.get(reverse("admin:notifications_case_change", args=[zero_token_draft.pk])).content
    assert b'id="zero-token-warning"' in page
    assert b'data-exposure-tokens="0"' in page

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        answer = official_client.post(
            reverse("admin:notifications_case_publish", args=[zero_token_draft.pk]), follow=True
        )
    assert callbacks == []  # nothing queued
    assert "no phone can be told" in answer.content.decode()
    assert "queued" not in answer.content.decode()
    zero_token_draft.refresh_from_db()
    assert zero_token_draft.status == Case.Status.DRAFT


def test_a_published_case_is_read_only_with_a_withdraw_button(
    official_client, draft, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        official_client.post(reverse("admin:notifications_case_publish", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.status == Case.Status.PUBLISHED

    page = official_client.get(reverse("admin:notifications_case_change", args=[draft.pk])).content.decode()
    assert 'name="_save"' not in page and 'name="_continue"' not in page and 'name="_addanother"' not in page
    assert 'id="case-withdraw"' in page and 'id="case-publish"' not in page
    assert timezone.localtime(draft.published_at).strftime("%Y-%m-%d %H:%M HKT") in page
    assert f"{yesterday_at(12):%Y-%m-%d} 12:00 HKT" in page  # the visit's window, read-only, with its zone

    # A post of the old form changes nothing.
    official_client.post(
        reverse("admin:notifications_case_change", args=[draft.pk]),
        {"reference": "HK-EDITED", "confirmed_on": draft.confirmed_on.isoformat()},
    )
    draft.refresh_from_db()
    assert draft.reference == "HK-1"

    official_client.post(reverse("admin:notifications_case_withdraw", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.status == Case.Status.WITHDRAWN


def test_the_case_buttons_need_the_publish_permission(client, draft):
    client.force_login(staff_make("editor", permissions=["view_case", "change_case"]))
    assert b'id="case-publish"' not in client.get(reverse("admin:notifications_case_change", args=[draft.pk])).content
    assert client.post(reverse("admin:notifications_case_publish", args=[draft.pk])).status_code == 403
    draft.refresh_from_db()
    assert draft.status == Case.Status.DRAFT


def test_a_case_visit_reads_with_the_venue_name_and_local_time(draft):
    visit = CaseVisit.objects.select_related("venue").get(case=draft)
    assert str(visit) == f"HK-1 @ Lucky Noodle House {yesterday_at(12):%Y-%m-%d} 12:00–12:30 HKT"


def test_time_fields_name_their_zone(official_client):
    page = official_client.get(reverse("admin:notifications_case_add")).content.decode()
    assert "Local time (HKT, UTC+08:00)." in page


def test_the_dashboard_never_shows_zero_tokens_when_some_are_stored(official_client, on_postgres):
    device, _ = device_register()
    VisitToken.objects.bulk_create(
        VisitToken(date=timezone.localdate(), token=bytes([n]) * 16, device=device) for n in range(3)
    )
    # Before any ANALYZE the planner's estimate of the fresh partition is 0; the figure is not.
    assert visit_tokens_figure().value == 3
    page = official_client.get(reverse("admin:notifications_dashboard"))
    assert page.context["visit_tokens"].value == 3 and not page.context["visit_tokens"].estimate
    assert '<td id="visit-tokens">3</td>' in page.content.decode()


def test_many_tokens_are_an_estimate_labelled_as_one(official_client, monkeypatch):
    monkeypatch.setattr("notifications.official_selectors.VISIT_TOKENS_EXACT_UP_TO", 2)
    device, _ = device_register()
    VisitToken.objects.bulk_create(
        VisitToken(date=timezone.localdate(), token=bytes([n]) * 16, device=device) for n in range(4)
    )
    figure = visit_tokens_figure()
    assert figure.estimate and figure.value >= 3  # never below what the bounded count saw
    assert VISIT_TOKENS_EXACT_UP_TO == 100_000
    assert "Visit tokens (estimate)" in official_client.get(reverse("admin:notifications_dashboard")).content.decode()


def _login_form(username, token):
    request = RequestFactory().post("/admin/login/")
    data = {"username": username, "password": PASSWORD, "otp_token": token, "otp_device": ""}
    return OneStepOTPAdminAuthenticationForm(request, data=data)


def test_two_factor_login_succeeds_in_one_step_with_one_device(db):
    official = official_make("official")
    device = TOTPDevice.objects.create(user=official, name="phone", confirmed=True)
    code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    form = _login_form("official", code)
    assert form.is_valid(), form.errors
    assert form.get_user().otp_device == device
    assert not _login_form("official", "000000" if code != "000000" else "111111").is_valid()
