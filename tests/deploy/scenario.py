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
