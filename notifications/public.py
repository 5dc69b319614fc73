"""The public exposure list: venues and windows of published cases, for people without the app.

What is listed, and for how long: every case visit of a published case whose official left
"show on the public list" on, until PUBLIC_EXPOSURE_LIST_DAYS after its window ends; a
withdrawn case disappears at once. What is never listed: anything about the case itself
(reference, confirmation date, the officials' message, how many case visits it had), so
entries of one case cannot be told apart from those of another.
"""

import csv
import datetime as dt
import io
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone, translation

from notifications.advice import advice_render, case_advice
from notifications.exposures import case_visit_window
from notifications.models import Case, CaseVisit, Risk
from venues.exports import spreadsheet_safe
from venues.models import District

# A bound on one answer, far above a bad week in Hong Kong (a few hundred venues a day).
PUBLIC_LIST_MAX_ENTRIES = 5000
CSV_COLUMNS = [
    "date",
    "start",
    "end",
    "venue_en",
    "venue_zh",
    "address_en",
    "address_zh",
    "district",
    "district_en",
    "district_zh",
]


@dataclass
class PublicExposure:
    venue_en: str
    venue_zh: str
    address_en: str
    address_zh: str
    district: str
    district_en: str
    district_zh: str
    start: dt.datetime  # local, padded as phones match it
    end: dt.datetime
    advice: dict

    @property
    def date(self) -> dt.date:
        return self.start.date()


def district_names() -> list[tuple[str, str, str]]:
    """``(slug, English, Chinese)`` of every district, whatever the request's language."""
    with translation.override("en"):
        english = {value: str(label) for value, label in District.choices}
    with translation.override("zh-hant"):
        chinese = {value: str(label) for value, label in District.choices}
    return [(value, english[value], chinese[value]) for value, _ in District.choices]


def public_exposures(*, district: str = "", now=None) -> list[PublicExposure]:
    """The entries of the public list, newest window first, optionally of one district.

    One query: published cases' public case visits whose window ended within the listing
    period (index: the case visit's case_id join, filtered by the case's status index).
    """
    now = now or timezone.now()
    since = now - dt.timedelta(days=settings.PUBLIC_EXPOSURE_LIST_DAYS)
    visits = (
        CaseVisit.objects.filter(
            public=True, review=CaseVisit.Review.ACCEPTED, case__status=Case.Status.PUBLISHED, end__gte=since
        )
        .select_related("venue", "case__advice_high")
        .order_by("-start", "venue__name_en")
    )
    if district:
        visits = visits.filter(venue__district=district)
    names = {slug: (english, chinese) for slug, english, chinese in district_names()}
    in_force: dict = {}
    entries = []
    for visit in visits[:PUBLIC_LIST_MAX_ENTRIES]:
        start, end = (timezone.localtime(moment) for moment in case_visit_window(visit))
        venue = visit.venue
        english, chinese = names.get(venue.district, ("", ""))
        template = case_advice(visit.case, Risk.HIGH, in_force=in_force)
        entries.append(
            PublicExposure(
                venue_en=venue.name_en,
                venue_zh=venue.name_zh,
                address_en=venue.address_en,
                address_zh=venue.address_zh,
                district=venue.district,
                district_en=english,
                district_zh=chinese,
                start=start,
                end=end,
                advice=advice_render(template, venue=venue, exposure_date=timezone.localtime(visit.start).date()),
            )
        )
    return entries


def public_exposures_document(entries: list[PublicExposure]) -> dict:
    """The JSON answer: no time of its own, so an unchanged list keeps its ETag."""
    return {
        "days": settings.PUBLIC_EXPOSURE_LIST_DAYS,
        "items": [
            {
                "venue": {"en": entry.venue_en, "zh": entry.venue_zh},
                "address": {"en": entry.address_en, "zh": entry.address_zh},
                "district": {"slug": entry.district, "en": entry.district_en, "zh": entry.district_zh},
                "date": entry.date.isoformat(),
                "window": {"start": entry.start.isoformat(), "end": entry.end.isoformat()},
                "advice": entry.advice,
            }
            for entry in entries
        ],
    }


def public_exposures_csv(entries: list[PublicExposure]) -> str:
    """The CSV answer, every cell safe to open in a spreadsheet."""
    out = io.StringIO()
    out.write("\ufeff")  # so spreadsheets read the Chinese names as UTF-8
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        row = [
            entry.date.isoformat(),
            entry.start.isoformat(),
            entry.end.isoformat(),
            entry.venue_en,
            entry.venue_zh,
            entry.address_en,
            entry.address_zh,
            entry.district,
            entry.district_en,
            entry.district_zh,
        ]
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    return out.getvalue()
