"""Building a published case visit's exposure tokens (PROTOCOL §3).

For the window ``[start − padding, end + padding)`` and the ``vk`` of every code version of
the venue issued before the window's end (a phone may still hold a code since replaced),
the slot tokens of every slot the window covers are ``high`` and the day tokens of its local
dates ``low``, derived exactly as a phone derives its visit tokens (notifications/tokens.py).
Only the workers that publish hold TRACING_KEY, so only they can open ``vk``.
"""

import datetime as dt
import math
from collections import defaultdict
from zoneinfo import ZoneInfo

from django.conf import settings

from notifications import tokens
from notifications.models import CaseVisit, ExposureToken, Risk
from venues.keystore import vk_decrypt
from venues.models import VenueCode

# Rows per INSERT statement when storing exposure tokens.
INSERT_BATCH = 2000


def case_visit_window(case_visit: CaseVisit) -> tuple[dt.datetime, dt.datetime]:
    """The padded window ``[start, end)`` of a case visit."""
    padding = dt.timedelta(minutes=case_visit.padding_minutes)
    return case_visit.start - padding, case_visit.end + padding


def case_visit_exposures(case_visit: CaseVisit) -> list[ExposureToken]:
    """The exposure tokens of one case visit, unsaved (PROTOCOL §3)."""
    start, end = case_visit_window(case_visit)
    t_in, t_out = math.floor(start.timestamp()), math.ceil(end.timestamp())
    time_zone = ZoneInfo(settings.TIME_ZONE)
    exposures = []
    for code in VenueCode.objects.filter(venue_id=case_visit.venue_id, issued_at__lt=end).order_by("version"):
        slot_tokens, day_tokens = tokens.interval_tokens(vk_decrypt(code), t_in, t_out, time_zone)
        exposures += [ExposureToken(case_visit=case_visit, date=d, token=t, risk=Risk.HIGH) for d, t in slot_tokens]
        exposures += [ExposureToken(case_visit=case_visit, date=d, token=t, risk=Risk.LOW) for d, t in day_tokens]
    return exposures


def exposures_store(case_visits) -> dict[dt.date, list[int]]:
    """Build and store the exposure tokens of ``case_visits``; returns their case visit ids by date.

    ``ON CONFLICT DO NOTHING`` on one_exposure_token_per_case_visit makes a repeated
    publication attempt harmless. The result is how publication matching is chunked.
    """
    by_date: dict[dt.date, set[int]] = defaultdict(set)
    rows = []
    for case_visit in case_visits:
        for exposure in case_visit_exposures(case_visit):
            rows.append(exposure)
            by_date[exposure.date].add(case_visit.pk)
    ExposureToken.objects.bulk_create(rows, batch_size=INSERT_BATCH, ignore_conflicts=True)
    return {date: sorted(ids) for date, ids in by_date.items()}
