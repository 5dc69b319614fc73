"""The story the deployment tests run through the real processes: a venue, a phone that was
there yesterday at noon and uploads, and a draft case there that an official publishes."""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from leavehome.logs import request_id_var
from notifications.models import Case, CaseVisit
from notifications.partitions import visit_token_partitions_ensure
from notifications.tasks import case_publish_later
from tests.phone.server import venue_make, venue_qr_text


@dataclass
class Outbreak:
    venue: object
    qr_text: str
    case: Case
    noon: dt.datetime


def outbreak_draft(reference: str) -> Outbreak:
    """A venue, and a draft case that visited it 12:00–13:00 yesterday."""
    noon = timezone.make_aware(dt.datetime.combine(timezone.localdate() - dt.timedelta(days=1), dt.time(12)))
    venue = venue_make(name_en=f"Cafe {reference}", name_zh=f"咖啡 {reference}")
    qr_text = venue_qr_text(venue)
    visit_token_partitions_ensure([noon.date()])
    case = Case.objects.create(reference=reference, confirmed_on=timezone.localdate())
    CaseVisit.objects.create(case=case, venue=venue, start=noon, end=noon + dt.timedelta(hours=1))
    return Outbreak(venue=venue, qr_text=qr_text, case=case, noon=noon)


def phone_visits_and_uploads(device, outbreak: Outbreak) -> int:
    """The phone registers, checks in at the venue 12:10–12:30 and uploads; returns tokens accepted."""
    device.register()
    start = int(outbreak.noon.timestamp())
    device.check_in(device.scan(outbreak.qr_text), start + 600, start + 1800)
    return device.upload()


def publish_as_an_official(outbreak: Outbreak, *, actor=None, request_id: str | None = None) -> None:
    """Queue the publication as the admin does, on commit, under ``request_id`` if given."""
    reset = request_id_var.set(request_id)
    try:
        with transaction.atomic():
            case_publish_later(case=outbreak.case, actor=actor)
    finally:
        request_id_var.reset(reset)


def keys_of_this_process() -> dict:
    """The workers must open the venue keys this test process sealed: the same keys, as secrets."""
    return {"TRACING_KEY": settings.TRACING_KEY, "KEY_ENCRYPTION_KEY": settings.KEY_ENCRYPTION_KEY}


def publish_through_the_admin(base_url: str, outbreak: Outbreak, *, headers: dict) -> None:
    """An official logs in to the admin over HTTP and publishes the case with the admin action.

    The server must run with OTP_ADMIN_REQUIRED=0 and INSECURE_PLAIN_HTTP=1 (cookies over
    plain http); ``headers`` go with every request (what nginx adds).
    """
    import re

    import httpx

    from leavehome.staff import staff_user_create
    from tests.notifications.official_fixtures import health_officials_group_create

    password = "official-password-for-the-test-1"
    # An earlier transactional test may have flushed the group its migration made.
    health_officials_group_create()
    staff_user_create(
        username="official", email="official@health.example", group_name="Health officials", password=password
    )
    browser = httpx.Client(base_url=base_url, headers=headers, timeout=30)

    def csrf(page):
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)

    login = browser.get("/admin/login/")
    credentials = {"username": "official", "password": password, "csrfmiddlewaretoken": csrf(login)}
    assert browser.post("/admin/login/?next=/admin/", data=credentials).status_code == 302
    changelist = browser.get("/admin/notifications/case/")
    action = {"action": "publish", "_selected_action": [outbreak.case.pk], "csrfmiddlewaretoken": csrf(changelist)}
    assert browser.post("/admin/notifications/case/", data=action).status_code == 302
