"""The health officials' admin: who sees cases, publishing, CSV import, dashboard, two-factor login."""

import datetime as dt
import importlib
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_otp.admin import OTPAdminSite
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from leavehome.models import AuditEntry
from notifications.models import Case
from tests.notifications.official_fixtures import PASSWORD, health_officials_group_create, staff_make


@pytest.fixture(autouse=True)
def _health_officials_group(db):
    health_officials_group_create()


def _action(client, action, case):
    return client.post(
        reverse("admin:notifications_case_changelist"), {"action": action, "_selected_action": [case.pk]}
    )


def test_a_health_official_publishes_and_withdraws_a_case(official_client, draft, django_capture_on_commit_callbacks):
    assert official_client.get(reverse("admin:notifications_case_changelist")).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert _action(official_client, "publish", draft).status_code == 302
    draft.refresh_from_db()
    assert draft.status == Case.Status.PUBLISHED
    assert AuditEntry.objects.filter(action="case.publish", actor__username="official").exists()

    _action(official_client, "withdraw", draft)
    draft.refresh_from_db()
    assert draft.status == Case.Status.WITHDRAWN


@pytest.fixture
def broker_down(settings):
    """Tasks go to a broker nobody listens on (port 1), as during a broker outage."""
    from leavehome.celery import app
    from tests.conftest import _reset_broker_connections

    saved = {key: app.conf.get(key) for key in ("CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_URL")}
    app.conf.update({"CELERY_TASK_ALWAYS_EAGER": False, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"})
    settings.CELERY_TASK_ALWAYS_EAGER = False
    _reset_broker_connections(app)
    yield
    app.conf.update(saved)
    _reset_broker_connections(app)


# Committed at once, as in production, so the task is sent (and fails) inside the request.
@pytest.mark.django_db(transaction=True)
def test_publishing_with_the_broker_down_says_so_and_keeps_the_request(official_client, draft, broker_down):
    answer = _action(official_client, "publish", draft)
    assert answer.status_code == 302
    page = official_client.get(answer["Location"]).content.decode()
    assert "task queue is unavailable right now. The publication is recorded" in page
    draft.refresh_from_db()
    # Still a draft, but the request is stored: the publication sweep publishes it once the
    # broker is back (tests/notifications/test_sweep_worker.py runs that part).
    assert draft.status == Case.Status.DRAFT and draft.publish_requested_at is not None
    page = official_client.get(reverse("admin:notifications_case_change", args=[draft.pk])).content.decode()
    assert 'id="publication-queued"' in page


def test_staff_without_the_permission_cannot_see_or_publish_cases(client, draft):
    client.force_login(staff_make("someone-else"))
    assert client.get(reverse("admin:notifications_case_changelist")).status_code == 403
    assert client.get(reverse("admin:notifications_case_change", args=[draft.pk])).status_code == 403
    assert _action(client, "publish", draft).status_code == 403
    assert client.get(reverse("admin:notifications_dashboard")).status_code == 403
    draft.refresh_from_db()
    assert draft.status == Case.Status.DRAFT


def test_venue_administrators_see_nothing_of_cases(client, draft):
    importlib.import_module("venues.migrations.0003_venue_administrators_group").create_group(django_apps, None)
    client.force_login(staff_make("venue-admin", group="Venue administrators"))
    assert client.get(reverse("admin:index")).status_code == 200
    assert client.get(reverse("admin:notifications_case_changelist")).status_code == 403
    assert b"notifications/case" not in client.get(reverse("admin:index")).content


def test_an_official_who_may_edit_but_not_publish_gets_no_publish_action(client, draft):
    editor = staff_make("editor")
    editor.user_permissions.add(
        *Group.objects.get(name="Health officials").permissions.exclude(codename="publish_case")
    )
    client.force_login(editor)
    page = client.get(reverse("admin:notifications_case_changelist"))
    assert page.status_code == 200
    assert b'value="publish"' not in page.content
    _action(client, "publish", draft)
    draft.refresh_from_db()
    assert draft.status == Case.Status.DRAFT


def test_a_venue_owner_cannot_reach_the_admin(client, venue):
    client.force_login(venue.owner)
    answer = client.get(reverse("admin:notifications_case_changelist"))
    assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
    login = client.post(reverse("admin:login"), {"username": venue.owner.username, "password": PASSWORD})
    assert login.status_code == 200  # the form again, with "not a staff account"
    assert client.get(reverse("admin:index")).status_code == 302


def test_an_official_finds_the_venue_by_autocomplete(official_client, venue):
    assert official_client.get(reverse("admin:notifications_case_add")).status_code == 200
    answer = official_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "notifications", "model_name": "casevisit", "field_name": "venue", "term": "Noodle"},
    )
    assert answer.status_code == 200
    assert [result["id"] for result in answer.json()["results"]] == [str(venue.pk)]


def test_a_window_ending_before_it_starts_is_refused_on_the_form(official_client, venue):
    start = timezone.localtime() - dt.timedelta(days=1)
    answer = official_client.post(
        reverse("admin:notifications_case_add"),
        {
            "reference": "HK-2",
            "confirmed_on": timezone.localdate().isoformat(),
            "visits-TOTAL_FORMS": "1",
            "visits-INITIAL_FORMS": "0",
            "visits-0-venue": str(venue.pk),
            "visits-0-start_0": start.strftime("%Y-%m-%d"),
            "visits-0-start_1": "13:00:00",
            "visits-0-end_0": start.strftime("%Y-%m-%d"),
            "visits-0-end_1": "12:00:00",
            "visits-0-padding_minutes": "0",
        },
    )
    assert answer.status_code == 200
    assert b"must end after it starts" in answer.content
    assert not Case.objects.filter(reference="HK-2").exists()


def test_csv_import_previews_then_commits_all_rows(official_client, draft, venue):
    url = reverse("admin:notifications_case_import_visits", args=[draft.pk])
    day = (timezone.localdate() - dt.timedelta(days=2)).isoformat()
    good = f"{venue.pk},{day} 18:00,{day} 19:00"
    bad = f"{venue.pk},{day} 19:00,{day} 18:00"

    preview = official_client.post(url, {"csv_file": StringIO(f"venue_id,start,end\n{good}\n{bad}\n")})
    assert preview.status_code == 200
    assert b"must end after it starts" in preview.content
    assert b'name="confirm"' not in preview.content  # nothing to confirm while a row is wrong

    preview = official_client.post(url, {"csv_file": StringIO(f"{good}\n{good}\n")})
    assert b'name="confirm"' in preview.content
    assert draft.visits.count() == 1  # a preview saves nothing
    done = official_client.post(url, {"csv_text": preview.context["csv_text"], "confirm": "1"})
    assert done.status_code == 302
    assert draft.visits.count() == 3


def test_a_csv_cell_over_the_field_limit_is_an_error_message(official_client, draft, venue):
    url = reverse("admin:notifications_case_import_visits", args=[draft.pk])
    day = (timezone.localdate() - dt.timedelta(days=2)).isoformat()
    before = draft.visits.count()
    answer = official_client.post(url, {"csv_text": f"{venue.pk},{day} 18:00,{'9' * 200_000}\n", "confirm": "1"})
    assert answer.status_code == 200
    assert b"cannot be read as CSV" in answer.content
    assert draft.visits.count() == before


def test_the_dashboard_shows_the_figures(official_client, draft, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _action(official_client, "publish", draft)
    page = official_client.get(reverse("admin:notifications_dashboard"))
    assert page.status_code == 200
    assert page.context["cases"] == [{"status": "published", "total": 1}]
    assert len(page.context["runs"]) == 1
    assert page.context["push"]["deliveries"]["delivered"] == 0  # no phone had a push channel
    assert "Last matching runs" in page.content.decode()


def test_the_dashboard_is_translated_to_traditional_chinese(official_client):
    page = official_client.get(reverse("admin:notifications_dashboard"), headers={"accept-language": "zh-hant"})
    assert "最近的配對" in page.content.decode()


def test_the_otp_admin_site_refuses_staff_without_a_verified_second_factor(db):
    official = staff_make("official", group="Health officials")
    request = RequestFactory().get("/admin/")
    request.user = official
    official.is_verified = lambda: False  # what django_otp's middleware sets for a password-only login
    assert not OTPAdminSite().has_permission(request)
    official.is_verified = lambda: True
    assert OTPAdminSite().has_permission(request)


def test_totp_enrolment_prints_a_uri_whose_codes_verify(db):
    official = staff_make("official", group="Health officials")
    out = StringIO()
    call_command("totp_enrol", "official", stdout=out)
    assert out.getvalue().startswith("otpauth://totp/")
    device = TOTPDevice.objects.get(user=official)
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    assert device.verify_token(f"{code:0{device.digits}d}")


def test_with_otp_required_the_admin_login_asks_for_a_one_time_password():
    # urls.py decides at import time, so this runs in a fresh process with the setting on.
    script = (
        "from django.test import Client; from django.contrib import admin; from django_otp.admin import OTPAdminSite;"
        "from leavehome.admin import StaffLoginForm;"
        "page = Client().get('/admin/login/');"
        "print(isinstance(admin.site._wrapped, OTPAdminSite), b'name=\"otp_token\"' in page.content,"
        " issubclass(admin.site.login_form, StaffLoginForm))"
    )
    env = {**os.environ, "OTP_ADMIN_REQUIRED": "1", "DJANGO_SETTINGS_MODULE": "leavehome.settings"}
    env.pop("DATABASE_URL", None)  # the login page needs no database
    done = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); import leavehome.urls; {script}"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "True True True"


def test_the_two_factor_login_never_puts_the_typed_password_in_the_page(rf, db):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from leavehome.admin import LeaveHomeOTPAdminSite

    staff = staff_make("official", group="Health officials")
    staff.set_password("typed-secret-password-77")
    staff.save()
    TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    request = rf.post("/admin/login/")
    for token in ("", "000000"):  # the code not yet typed, then a wrong one
        form = LeaveHomeOTPAdminSite.login_form(
            request, data={"username": "official", "password": "typed-secret-password-77", "otp_token": token}
        )
        assert not form.is_valid()
        assert form.get_user() is not None  # the password was right: the form waits for the code
        assert "typed-secret-password-77" not in form.as_p()
