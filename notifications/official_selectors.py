"""Reads for the health officials' console: publication previews and the dashboard's figures.

Everything the admin shows about cases, tokens and matching comes from here, so each figure
has one definition and one query-count guard (tests/notifications/test_official_selectors.py).
Queries are bounded: grouped counts of small tables, or of a retention-bounded range through
an index; the visit-token table (billions of rows at peak) is never counted exactly beyond
VISIT_TOKENS_EXACT_UP_TO rows.
"""

import csv
import datetime as dt
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.db.models.functions import TruncDate, TruncHour
from django.utils import timezone

from notifications import tokens
from notifications.exposures import case_visit_window
from notifications.models import Case, CaseVisit, Device, MatchingRun, Notification, VisitToken
from notifications.partitions import visit_tokens_stored_estimate
from notifications.push.selectors import push_delivery_summary

# Below this many stored visit tokens the dashboard counts them exactly (a bounded scan of at
# most this many index entries); above it, the planner's estimate, labelled as one.
VISIT_TOKENS_EXACT_UP_TO = 100_000


def local_time_label(moment: dt.datetime) -> str:
    """``2026-12-01 13:02 HKT``: local time with its zone, as every page of the console shows it."""
    local = timezone.localtime(moment)
    return f"{local:%Y-%m-%d %H:%M} {local:%Z}"


@dataclass
class CaseVisitPreview:
    """What publishing one case visit will do, computed without opening any venue key."""

    case_visit: CaseVisit
    start: dt.datetime  # padded window, local time
    end: dt.datetime
    code_versions: list[int]
    slots: int
    dates: int

    @property
    def high_tokens(self) -> int:
        return self.slots * len(self.code_versions)

    @property
    def low_tokens(self) -> int:
        return self.dates * len(self.code_versions)

    @property
    def exposure_tokens(self) -> int:
        return self.high_tokens + self.low_tokens

    @property
    def window_label(self) -> str:
        return f"{local_time_label(self.start)} – {local_time_label(self.end)}"


def case_visit_previews(case_visits) -> list[CaseVisitPreview]:
    """Per case visit: the code versions of its venue issued before its window ends (PROTOCOL §3:
    a phone may hold any of them) and how many exposure tokens it will produce. Zero tokens
    means no phone can be told: nobody checked in with a code of that venue in the window.
    Two queries whatever the number of visits (the visits with their venues, the codes)."""
    from venues.models import VenueCode

    case_visits = list(case_visits)
    venue_ids = {visit.venue_id for visit in case_visits}
    issued: dict = defaultdict(list)
    codes = VenueCode.objects.filter(venue_id__in=venue_ids).order_by("version")
    for venue_id, version, issued_at in codes.values_list("venue_id", "version", "issued_at"):
        issued[venue_id].append((version, issued_at))
    time_zone = ZoneInfo(settings.TIME_ZONE)
    previews = []
    for visit in case_visits:
        start, end = case_visit_window(visit)
        slots = tokens.covered_slots(math.floor(start.timestamp()), math.ceil(end.timestamp()))
        dates = {tokens.slot_local_date(slot, time_zone) for slot in slots}
        versions = [version for version, issued_at in issued[visit.venue_id] if issued_at < end]
        previews.append(
            CaseVisitPreview(
                case_visit=visit,
                start=timezone.localtime(start),
                end=timezone.localtime(end),
                code_versions=versions,
                slots=len(slots),
                dates=len(dates),
            )
        )
    return previews


def case_previews(case: Case) -> list[CaseVisitPreview]:
    """The previews of a case's visits, in window order."""
    # Proposed visits (a case's own upload, not reviewed yet) are not published: not previewed.
    return case_visit_previews(case.visits.filter(review=CaseVisit.Review.ACCEPTED).select_related("venue", "case"))


@dataclass
class Figure:
    """A number the dashboard shows, and whether it is an estimate (then labelled so)."""

    value: int
    estimate: bool = False


def visit_tokens_figure() -> Figure:
    """Visit tokens stored: exact up to VISIT_TOKENS_EXACT_UP_TO, else the planner's estimate.

    The estimate alone reads 0 before the first ANALYZE of a partition, which would tell an
    official that nothing is stored; a bounded count settles small tables exactly, and a big
    table is never reported below the bound it was seen to exceed.
    """
    # A sliced count is SELECT count(*) FROM (SELECT … LIMIT n): it stops after n rows.
    seen = VisitToken.objects.values("date")[: VISIT_TOKENS_EXACT_UP_TO + 1].count()
    if seen <= VISIT_TOKENS_EXACT_UP_TO:
        return Figure(seen)
    return Figure(max(visit_tokens_stored_estimate(), seen), estimate=True)


@dataclass
class ClusterCandidate:
    """A venue that at least two distinct cases visited within the period."""

    venue: object
    visits: list[CaseVisit]  # window order, with their cases
    overlapping: bool  # two different cases' windows overlap in time

    @property
    def cases(self) -> list[Case]:
        return list({visit.case_id: visit.case for visit in self.visits}.values())

    @property
    def case_count(self) -> int:
        return len(self.cases)

    @property
    def first_start(self) -> dt.datetime:
        return self.visits[0].start

    @property
    def last_end(self) -> dt.datetime:
        return max(visit.end for visit in self.visits)


CLUSTER_ORDERS = {
    "cases": lambda cluster: (-cluster.case_count, -cluster.last_end.timestamp()),
    "latest": lambda cluster: -cluster.last_end.timestamp(),
    "venue": lambda cluster: cluster.venue.name_en.lower(),
    "overlap": lambda cluster: (not cluster.overlapping, -cluster.case_count),
}


def _overlapping(visits: list[CaseVisit]) -> bool:
    """Whether windows of two different cases overlap (visits sorted by start)."""
    for index, visit in enumerate(visits):
        for later in visits[index + 1 :]:
            if later.start >= visit.end:
                break
            if later.case_id != visit.case_id:
                return True
    return False


def cluster_candidates(*, days: int, order: str = "cases", now=None) -> list[ClusterCandidate]:
    """Venues visited by two or more distinct cases whose windows start within the last ``days``.

    Backward tracing: venues several cases share are where clusters are found. Withdrawn
    cases do not count. Two queries: the venues with their distinct case count (grouped over
    the period's case visits, a few thousand at most), then those venues' visits.
    """
    now = now or timezone.now()
    # Reviewed visits only: a proposal from a case's own upload may still be removed.
    visits = CaseVisit.objects.filter(
        start__gte=now - dt.timedelta(days=days), review=CaseVisit.Review.ACCEPTED
    ).exclude(case__status=Case.Status.WITHDRAWN)
    shared = visits.values("venue_id").annotate(cases=Count("case_id", distinct=True)).filter(cases__gte=2)
    venue_ids = shared.values("venue_id")
    by_venue: dict = defaultdict(list)
    for visit in visits.filter(venue_id__in=venue_ids).select_related("venue", "case").order_by("start"):
        by_venue[visit.venue_id].append(visit)
    clusters = [
        ClusterCandidate(venue=venue_visits[0].venue, visits=venue_visits, overlapping=_overlapping(venue_visits))
        for venue_visits in by_venue.values()
    ]
    return sorted(clusters, key=CLUSTER_ORDERS.get(order, CLUSTER_ORDERS["cases"]))


def cluster_candidates_csv(clusters: list[ClusterCandidate]) -> str:
    """One row per case visit of each candidate, formula-safe (officials open it in a spreadsheet)."""
    from venues.exports import spreadsheet_safe

    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(
        ["venue_id", "venue_en", "venue_zh", "district", "cases", "overlapping", "case", "case_status", "start", "end"]
    )
    for cluster in clusters:
        for visit in cluster.visits:
            row = [
                cluster.venue.pk,
                cluster.venue.name_en,
                cluster.venue.name_zh,
                cluster.venue.district,
                cluster.case_count,
                "yes" if cluster.overlapping else "no",
                visit.case.reference,
                visit.case.status,
                timezone.localtime(visit.start).isoformat(),
                timezone.localtime(visit.end).isoformat(),
            ]
            writer.writerow([spreadsheet_safe(cell) for cell in row])
    return out.getvalue()


def _local_days(days: int, now) -> list[dt.date]:
    today = timezone.localtime(now).date()
    return [today - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def _local_hours(hours: int, now) -> list[dt.datetime]:
    top = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
    return [top - dt.timedelta(hours=offset) for offset in range(hours - 1, -1, -1)]


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(settings.TIME_ZONE))


def visit_tokens_by_date() -> tuple[dict[dt.date, int], bool]:
    """Visit tokens stored per local date, and whether the numbers are estimates.

    Exact (a grouped count) while the table holds at most VISIT_TOKENS_EXACT_UP_TO rows, as
    on the embedded default and before PostgreSQL has analysed anything, whose estimates
    would read 0; beyond it, the planner's row estimate of each date partition (pg_class,
    no scan of the table).
    """
    from notifications.partitions import PARENT

    many = visit_tokens_figure().estimate  # the bounded count first, on every backend alike
    if connection.vendor != "postgresql" or not many:
        rows = VisitToken.objects.values("date").annotate(n=Count("token")).values_list("date", "n")
        return dict(rows), False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, greatest(c.reltuples, 0)::bigint FROM pg_inherits i "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE p.relname = %s AND c.relname LIKE %s",
            [PARENT, f"{PARENT}_p%"],
        )
        rows = cursor.fetchall()
    prefix = f"{PARENT}_p"
    return {dt.datetime.strptime(name.removeprefix(prefix), "%Y%m%d").date(): total for name, total in rows}, True


def chart_figures(*, days: int = 14, hours: int = 24, now=None) -> dict:
    """The series the dashboard's charts draw; every label is local time, every query bounded.

    Notifications and cases per day over ``days`` (range scans of created_at, published_at and
    withdrawn_at, indexed or small), push outcomes per channel kind per hour over ``hours``
    (PushDelivery's created_at index), publication lag per case over ``days`` (its matching
    runs), visit tokens per date (exact when few, else partition estimates). At most eight queries.
    """
    from notifications.models import PushChannel, PushDelivery

    now = now or timezone.now()
    zone = ZoneInfo(settings.TIME_ZONE)
    day_list = _local_days(days, now)
    since = _day_start(day_list[0])
    hour_list = _local_hours(hours, now)

    notifications = {risk: dict.fromkeys(day_list, 0) for risk in ("high", "low")}
    per_day = (
        Notification.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day", "risk")
        .annotate(n=Count("id"))
    )
    for row in per_day:
        notifications[row["risk"]][row["day"]] = row["n"]

    cases = {"published": dict.fromkeys(day_list, 0), "withdrawn": dict.fromkeys(day_list, 0)}
    for field, series in (("published_at", "published"), ("withdrawn_at", "withdrawn")):
        grouped = (
            Case.objects.filter(**{f"{field}__gte": since})
            .annotate(day=TruncDate(field, tzinfo=zone))
            .values("day")
            .annotate(n=Count("id"))
        )
        for row in grouped:
            cases[series][row["day"]] = row["n"]

    kinds = [kind.value for kind in PushChannel.Kind]
    push = {(kind, outcome): dict.fromkeys(hour_list, 0) for kind in kinds for outcome in ("delivered", "failed")}
    per_hour = (
        PushDelivery.objects.filter(created_at__gte=hour_list[0])
        .annotate(hour=TruncHour("created_at", tzinfo=zone))
        .values("hour", "channel__kind", "status")
        .annotate(n=Count("id"))
    )
    for row in per_hour:
        if row["status"] in (PushDelivery.Status.DELIVERED, PushDelivery.Status.FAILED, PushDelivery.Status.DISABLED):
            outcome = "delivered" if row["status"] == PushDelivery.Status.DELIVERED else "failed"
            hour = timezone.localtime(row["hour"])
            if hour in push[(row["channel__kind"], outcome)]:
                push[(row["channel__kind"], outcome)][hour] += row["n"]

    # Publish → notifications written: from the click's publication to the end of its last
    # matching chunk. Runs of the period's cases only: a few per case and date.
    lag: dict[str, float] = {}
    runs = MatchingRun.objects.filter(
        direction=MatchingRun.Direction.PUBLICATION, case__published_at__gte=since
    ).order_by("case__published_at", "started_at")
    for reference, published_at, started_at, duration_ms in runs.values_list(
        "case__reference", "case__published_at", "started_at", "duration_ms"
    ):
        done = (started_at - published_at).total_seconds() + duration_ms / 1000
        lag[reference] = max(lag.get(reference, 0.0), max(done, 0.0))

    tokens, tokens_estimated = visit_tokens_by_date()
    uploads = upload_hour_figures(hour_list)
    return {
        "days": [day.isoformat() for day in day_list],
        "hours": [f"{hour:%m-%d %H:00}" for hour in hour_list],
        "zone": f"{timezone.localtime(now):%Z}",
        "notifications": {risk: list(series.values()) for risk, series in notifications.items()},
        "cases": {name: list(series.values()) for name, series in cases.items()},
        "push": [
            {"kind": kind, "outcome": outcome, "counts": list(series.values())}
            for (kind, outcome), series in push.items()
        ],
        "lag": {"cases": list(lag), "seconds": [round(value, 2) for value in lag.values()]},
        "uploads": uploads,
        "tokens": {
            "dates": [day.isoformat() for day in day_list],
            "counts": [tokens.get(day, 0) for day in day_list],
            "estimate": tokens_estimated,
        },
    }


def upload_hour_figures(hour_list: list[dt.datetime]) -> dict:
    """Uploads and tokens matched per hour of arrival, and their upload → match lag (mean, max).

    From UploadHour, which the sweep keeps as it works: one small row per hour, so this reads
    at most ``len(hour_list)`` rows through its primary key, whatever the day's volume.
    """
    from notifications.models import UploadHour

    rows = {
        timezone.localtime(row.hour): row
        for row in UploadHour.objects.filter(hour__gte=hour_list[0], hour__lte=hour_list[-1])
    }
    series = [rows.get(hour) for hour in hour_list]
    return {
        "uploads": [row.uploads if row else 0 for row in series],
        "tokens": [row.tokens if row else 0 for row in series],
        "lag_mean_seconds": [
            round(row.lag_ms_total / row.uploads / 1000, 2) if row and row.uploads else 0 for row in series
        ],
        "lag_max_seconds": [round(row.lag_ms_max / 1000, 2) if row else 0 for row in series],
    }


def upload_backlog_figures(*, now=None) -> dict:
    """The upload-to-match lag as it stands: uploaded dates not yet swept, and the oldest one's age.

    Bounded like the token count (the backlog is seconds of uploads, unless the sweep stalls);
    the oldest row by primary key, which grows with arrival, is one index probe.
    """
    from notifications.models import UploadBacklog

    now = now or timezone.now()
    waiting = UploadBacklog.objects.values("id")[: VISIT_TOKENS_EXACT_UP_TO + 1].count()
    oldest = UploadBacklog.objects.order_by("id").values_list("created_at", flat=True).first()
    return {
        "waiting": Figure(waiting, estimate=waiting > VISIT_TOKENS_EXACT_UP_TO),
        "oldest_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
    }


def _counts(queryset, *fields):
    return list(queryset.values(*fields).annotate(total=Count("pk")).order_by(*fields))


def dashboard_figures() -> dict:
    """What the dashboard's tables show: a few grouped counts, each one query."""
    from venues.models import Venue

    return {
        "venues": _counts(Venue.objects.all(), "status"),
        "devices": Device.objects.count(),
        "visit_tokens": visit_tokens_figure(),
        "cases": _counts(Case.objects.all(), "status"),
        "matches": _counts(Notification.objects.all(), "risk", "status"),
        "runs": list(MatchingRun.objects.select_related("case")[:20]),
        "push": push_delivery_summary(),
        "backlog": upload_backlog_figures(),
    }
