"""Planted visits and the oracle that says which of them a publication must notify.

A benchmark publishes case visits at venues it registered itself, and plants phones that
visited those venues: some during a window (high risk), some the same day at another
time (low risk), some at the same time in another venue (nothing). Their tokens are
computed by the reference phone client from the venue's real QR text, exactly as a phone
would, and stored by COPY (or uploaded through the API, where ingest is measured).

The oracle is independent of token derivation and of SQL: it compares intervals. A device
is at high risk for a case visit if one of its visits to the same venue covers a slot the
window covers, at low risk if they only share a local date on which a covered slot starts
(PROTOCOL §2-3).
"""

import datetime as dt
import random
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

SLOT = 900
HONG_KONG = ZoneInfo("Asia/Hong_Kong")


@dataclass(frozen=True)
class PlantedVisit:
    device_id: uuid.UUID
    venue_id: uuid.UUID
    t_in: int
    t_out: int


@dataclass(frozen=True)
class Window:
    case_visit_key: int  # index of the case visit in the benchmark's list
    venue_id: uuid.UUID
    start: int
    end: int


def _slots(t_in: int, t_out: int) -> range:
    first = t_in // SLOT
    return range(first, max(first, (t_out - 1) // SLOT) + 1)


def _dates(slots: range, time_zone: ZoneInfo) -> set[dt.date]:
    return {dt.datetime.fromtimestamp(slot * SLOT, tz=time_zone).date() for slot in slots}


def oracle(visits: list[PlantedVisit], windows: list[Window], time_zone=HONG_KONG) -> dict[tuple, str]:
    """Brute force over every (visit, window) pair of one venue: {(device_id, case_visit_key): risk}."""
    by_venue: dict[uuid.UUID, list[Window]] = {}
    for window in windows:
        by_venue.setdefault(window.venue_id, []).append(window)
    expected: dict[tuple, str] = {}
    for visit in visits:
        visit_slots = _slots(visit.t_in, visit.t_out)
        visit_dates = _dates(visit_slots, time_zone)
        for window in by_venue.get(visit.venue_id, []):
            window_slots = _slots(window.start, window.end)
            key = (visit.device_id, window.case_visit_key)
            if set(visit_slots) & set(window_slots):
                expected[key] = "high"
            elif visit_dates & _dates(window_slots, time_zone) and expected.get(key) != "high":
                expected[key] = "low"
    return expected


def local_timestamp(date: dt.date, hour: int, minute: int = 0, time_zone=HONG_KONG) -> int:
    return int(dt.datetime.combine(date, dt.time(hour, minute), tzinfo=time_zone).timestamp())


def plan_case_visits(venues: list, dates: list[dt.date], count: int) -> list[Window]:
    """``count`` one-hour windows: two per (venue, date), at 10:00 and 15:00 local time."""
    windows = []
    for key in range(count):
        venue = venues[(key // 2) % len(venues)]
        date = dates[(key // (2 * len(venues))) % len(dates)]
        hour = 10 if key % 2 == 0 else 15
        start = local_timestamp(date, hour)
        windows.append(Window(case_visit_key=key, venue_id=venue, start=start, end=start + 3600))
    return windows


def plan_phones(windows: list[Window], decoy_venues: list, *, high: int, low: int, seed: int = 7) -> list[PlantedVisit]:
    """Phones around each window: ``high`` overlapping it, ``low`` there the same day between the
    windows, and one at the same time in a venue with no case (a decoy that must match nothing)."""
    rng = random.Random(seed)
    visits = []
    for window in windows:
        for _ in range(high):
            t_in = window.start - 2700 + rng.randrange(0, 5400)  # 45 min before to 45 min after the start
            visits.append(PlantedVisit(uuid.uuid4(), window.venue_id, t_in, t_in + rng.randrange(900, 5400)))
        day = dt.datetime.fromtimestamp(window.start, tz=HONG_KONG).date()
        for _ in range(low):
            t_in = local_timestamp(day, 12, 30) + rng.randrange(0, 3600)  # between 10-11 and 15-16
            visits.append(PlantedVisit(uuid.uuid4(), window.venue_id, t_in, t_in + rng.randrange(600, 1800)))
        decoy = decoy_venues[window.case_visit_key % len(decoy_venues)]
        visits.append(PlantedVisit(uuid.uuid4(), decoy, window.start, window.end))
    return visits
