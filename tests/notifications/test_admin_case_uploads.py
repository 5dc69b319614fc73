"""The case page's upload panel: issue a code (shown once), revoke it, review proposed visits."""

import datetime as dt
import importlib
import json

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from leavehome.models import AuditEntry
from notifications.case_uploads import case_upload_code_issue, case_upload_receive
from notifications.models import Case, CaseUploadCode, CaseVisit
from tests.phone.server import venue_make, venue_qr_text
from venues.codes import qr_prefix

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _health_officials_group(db):
    """The group as migrations 0006 and 0008 make it (a transactional test may have flushed it)."""
    importlib.import_module("notifications.migrations.0006_case_publish_permission_health_officials").create_group(
        django_apps, None
    )
    importlib.import_module("notifications.migrations.0008_case_upload").grant_officials(django_apps, None)


def _staff(username, *, permissions_but=None):
    user = get_user_model().objects.create_user(username=username, password="x" * 12, is_staff=True)
    permissions = Group.objects.get(name="Health officials").permissions.all()
    if permissions_but:
        permissions = permissions.exclude(codename__in=permissions_but)
    user.user_permissions.add(*permissions)
    return user


@pytest.fixture
def official():
    return _staff("tracer")


@pytest.fixture
def official_client(client, official):
    client.force_login(official)
    return client


@pytest.fixture
def case():
    return Case.objects.create(reference="HK-U9", confirmed_on=timezone.localdate())


@pytest.fixture
def uploaded(case, official):
    """The case uploaded one visit at a Wan Chai gym, yesterday 19:00–20:00 Hong Kong time."""
    venue = venue_make(name_en="Harbour Gym", name_zh="海港健身室", district="wan-chai")
    _, code = case_upload_code_issue(case=case, actor=official)
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    t_in = int(timezone.make_aware(dt.datetime.combine(yesterday, dt.time(19))).timestamp())
    jws = venue_qr_text(venue).removeprefix(qr_prefix())
    case_upload_receive(code=code, visits=[{"venue_code": jws, "t_in": t_in, "t_out": t_in + 3600}])
    return venue


def _issue(client, case):
    return client.post(reverse("admin:notifications_case_upload_code_issue", args=[case.pk]))


def test_an_issued_code_is_shown_once_with_its_expiry(official_client, case):
    page = official_client.get(reverse("admin:notifications_case_change", args=[case.pk]))
    assert b'id="issue-upload-code"' in page.content
    answer = _issue(official_client, case)
    assert answer.status_code == 200
    assert "no-store" in answer["Cache-Control"]
    code = answer.context["code"]
    expires = timezone.localtime(CaseUploadCode.objects.get().expires_at)
    assert f"{expires:%Y-%m-%d %H:%M} HKT" in answer.content.decode()
    assert expires - timezone.localtime() > dt.timedelta(hours=23)
    again = official_client.get(reverse("admin:notifications_case_change", args=[case.pk])).content.decode()
    assert code not in again and "Valid" in again
    venue = venue_make()
    body = {"code": code, "visits": [{"venue_code": venue_qr_text(venue).removeprefix(qr_prefix()), "t_in": 10}]}
    body["visits"][0].update(t_in=int(timezone.now().timestamp()) - 3600, t_out=int(timezone.now().timestamp()) - 600)
    assert Client().post("/api/v1/case-uploads", json.dumps(body), content_type="application/json").status_code == 201


def test_issuing_needs_its_permission_and_a_post(client, case):
    client.force_login(_staff("editor", permissions_but=["add_caseuploadcode"]))
    page = client.get(reverse("admin:notifications_case_change", args=[case.pk]))
    assert page.status_code == 200 and b'id="issue-upload-code"' not in page.content
    assert _issue(client, case).status_code == 403
    client.force_login(_staff("tracer2"))
    assert client.get(reverse("admin:notifications_case_upload_code_issue", args=[case.pk])).status_code == 405
    assert not CaseUploadCode.objects.exists()


def test_staff_outside_the_officials_cannot_issue(client, case):
    client.force_login(get_user_model().objects.create_user(username="clerk", password="x" * 12, is_staff=True))
    assert _issue(client, case).status_code == 403
    assert not CaseUploadCode.objects.exists()


def test_no_code_for_a_published_case(official_client, case):
    Case.objects.filter(pk=case.pk).update(status=Case.Status.PUBLISHED)
    answer = _issue(official_client, case)
    assert answer.status_code == 302
    assert not CaseUploadCode.objects.exists()


def test_an_official_revokes_a_code(official_client, case, official):
    upload_code, _ = case_upload_code_issue(case=case, actor=official)
    url = reverse("admin:notifications_case_upload_code_revoke", args=[case.pk, upload_code.pk])
    assert official_client.post(url).status_code == 302
    upload_code.refresh_from_db()
    assert upload_code.revoked_at is not None
    assert AuditEntry.objects.filter(action="case_upload_code.revoke", actor=official).exists()
    page = official_client.get(reverse("admin:notifications_case_change", args=[case.pk])).content.decode()
    assert "Revoked" in page and "revoke-upload-code" not in page


def test_the_official_sees_the_uploaded_venues_in_local_time_and_accepts_them(official_client, case, uploaded):
    page = official_client.get(reverse("admin:notifications_case_change", args=[case.pk])).content.decode()
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    assert "Harbour Gym / 海港健身室" in page and "Wan Chai" in page
    assert f"{yesterday:%Y-%m-%d} 19:00 HKT" in page and f"{yesterday:%Y-%m-%d} 20:00 HKT" in page
    done = official_client.post(reverse("admin:notifications_case_uploaded_visits_accept", args=[case.pk]))
    assert done.status_code == 302
    assert case.visits.get().review == CaseVisit.Review.ACCEPTED


def test_the_review_is_in_chinese_too(official_client, case, uploaded):
    page = official_client.get(
        reverse("admin:notifications_case_change", args=[case.pk]), headers={"accept-language": "zh-hant"}
    ).content.decode()
    assert "灣仔" in page  # the district
    assert "待審核的上載到訪紀錄" in page


def test_publishing_a_case_with_unreviewed_visits_says_why_not(
    official_client, case, uploaded, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        answer = official_client.post(
            reverse("admin:notifications_case_changelist"),
            {"action": "publish", "_selected_action": [case.pk]},
            follow=True,
        )
    assert "Review the 1 visits the case uploaded first" in answer.content.decode()
    case.refresh_from_db()
    assert case.status == Case.Status.DRAFT
