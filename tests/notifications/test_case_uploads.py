"""Proposed visits and publication, the visit sources, and retention of upload codes (services)."""

import datetime as dt

import pytest
from django.utils import timezone

from leavehome.models import AuditEntry
from notifications.case_uploads import case_upload_code_issue, case_upload_receive, case_visits_accept
from notifications.cases import CaseStateError, case_publish, case_visits_csv_parse, case_visits_import
from notifications.models import Case, CaseUploadCode, CaseVisit, ExposureToken
from notifications.retention import retention_purge
from tests.phone.server import official, venue_make, venue_qr_text
from venues.codes import qr_prefix

pytestmark = pytest.mark.django_db


@pytest.fixture
def venue():
    return venue_make()


@pytest.fixture
def case(venue):
    """A draft with one interview visit and one uploaded (proposed) visit."""
    case = Case.objects.create(reference="HK-U2", confirmed_on=timezone.localdate())
    start = timezone.now() - dt.timedelta(days=1)
    CaseVisit.objects.create(case=case, venue=venue, start=start, end=start + dt.timedelta(minutes=30))
    _, code = case_upload_code_issue(case=case, actor=official())
    jws = venue_qr_text(venue).removeprefix(qr_prefix())
    t_in = int((timezone.now() - dt.timedelta(hours=3)).timestamp())
    case_upload_receive(code=code, visits=[{"venue_code": jws, "t_in": t_in, "t_out": t_in + 1800}])
    return case


def test_a_case_with_visits_awaiting_review_is_not_published(case):
    with pytest.raises(CaseStateError, match="Review the 1 visits"):
        case_publish(case=case, actor=official())
    case.refresh_from_db()
    assert case.status == Case.Status.DRAFT
    assert not ExposureToken.objects.exists()


def test_accepted_visits_are_published_with_the_others(case):
    actor = official()
    assert case_visits_accept(case=case, actor=actor) == 1
    assert AuditEntry.objects.filter(action="case.accept_uploaded_visits", actor=actor).exists()
    case_publish(case=case, actor=actor)
    published = set(ExposureToken.objects.values_list("case_visit__source", flat=True))
    assert published == {CaseVisit.Source.INTERVIEW, CaseVisit.Source.UPLOAD}


def test_a_removed_proposal_is_never_published(case):
    case.visits.filter(review=CaseVisit.Review.PROPOSED).delete()
    case_publish(case=case, actor=official())
    assert set(ExposureToken.objects.values_list("case_visit__source", flat=True)) == {CaseVisit.Source.INTERVIEW}


def test_csv_imported_visits_say_so(venue):
    case = Case.objects.create(reference="HK-U3", confirmed_on=timezone.localdate())
    day = (timezone.localdate() - dt.timedelta(days=2)).isoformat()
    rows = case_visits_csv_parse(f"{venue.pk},{day} 18:00,{day} 19:00\n")
    (visit,) = case_visits_import(case=case, rows=rows, actor=official())
    assert (visit.source, visit.review) == (CaseVisit.Source.CSV, CaseVisit.Review.ACCEPTED)


def test_upload_codes_go_with_their_case_by_retention(case, settings):
    later = timezone.localdate() + dt.timedelta(days=settings.LEAVEHOME_RETENTION_DAYS + 2)
    Case.objects.filter(pk=case.pk).update(confirmed_on=timezone.localdate() - dt.timedelta(days=40))
    retention_purge(today=later)
    assert not Case.objects.exists()
    assert not CaseUploadCode.objects.exists()
    assert not CaseVisit.objects.exists()
