"""B2 publication matching, end to end: 1,000 case visits at one date partition of N tokens.

Each size is one local date's partition (full scale: 10M and 80M tokens, a Hong Kong peak day
being 60-100M), generated inside PostgreSQL and kept between runs (bench/datagen.py). For
each size the benchmark registers fresh venues through the bulk path, plants phones around
1,000 one-hour case-visit windows on that date (tokens computed by the reference phone
client, stored by COPY), imports the case visits through the officials' CSV path, then
publishes: the clock runs from the call of the publish service (``case_publish_and_match``:
exposure tokens built, the feed appended, matching tasks queued on commit) until deploy/Procfile's
worker has run every matching task and committed its notifications (no matching task queued
or taken on the bench's broker).

The protocol is the same at every size: two publications, each of its own 1,000 case visits
at its own venues, one right after the other, after the partition was generated, vacuumed
and analysed and the planted phones stored. The first finds whatever PostgreSQL and the OS
keep cached at that point ("first"), the second runs right after ("second").

Local limits in the same run: a trivial query's round trip, and the bare join (the same
exposure tokens joined to the same partition, counted, nothing written). The first matching
statement is explained (EXPLAIN ANALYZE, re-run in-process and rolled back).

Target on this machine: ≤ 2 s end to end at an 80M-token day. Correctness at every size: the
notifications equal the oracle's (bench/phones.py) for every planted phone, none goes to a
decoy or a background device.
"""

import datetime as dt
import os
import time
import uuid
import zlib

from bench import datagen, load, phones
from bench.common import Options, Report, check, django_setup, fmt, parse_options, percentile
from bench.processes import peak_rss_mib

SIZES = {"small": [100_000], "medium": [1_000_000, 10_000_000], "full": [10_000_000, 80_000_000]}
# Each size has a date of its own, so a medium run never shrinks or relabels a full run's day.
SIZE_DATES = {100_000: 2, 1_000_000: 3, 10_000_000: 4, 80_000_000: 5}
OTHER_SIZES_FROM = 6
CASE_VISITS = 1000
CASE_VENUES = 500  # two windows each (10:00 and 15:00) on the size's date
DECOY_VENUES = 20
PUBLICATIONS = ("first", "second")
END_TO_END_TIMEOUT = 600.0


def parse_size(text: str) -> int:
    text = text.strip().upper()
    factor = {"K": 1_000, "M": 1_000_000, "B": 1_000_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KMB")) * factor)


def size_date(size: int, index: int) -> dt.date:
    """The local date holding the partition of ``size`` tokens: retained, and neither ingest
    (today, yesterday) nor the purge's day."""
    from django.utils import timezone

    return timezone.localdate() - dt.timedelta(days=SIZE_DATES.get(size, OTHER_SIZES_FROM + index))


class StatementTimer:
    """Times every SQL statement run through Django's connection (an execute wrapper)."""

    def __init__(self):
        self.statements: list[tuple[str, tuple, float]] = []
        self.started_at: list[float] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.statements.append((sql, params, time.perf_counter() - started))
            self.started_at.append(started)

    def span(self, first: int, end: float) -> float:
        """Seconds from statement ``first`` starting until the next statement after it starts (or ``end``),
        so a COMMIT between them is counted."""
        following = self.started_at[first + 1 :]
        return (following[0] if following else end) - self.started_at[first]

    def matching(self) -> list[tuple[str, tuple, float]]:
        from notifications.models import Notification, VisitToken

        notification, visit = Notification._meta.db_table, VisitToken._meta.db_table
        return [
            statement
            for statement in self.statements
            if statement[0].lstrip().startswith("INSERT") and notification in statement[0] and visit in statement[0]
        ]


def backdate_codes(venue_ids, *, days: int) -> None:
    """Date the venues' codes ``days`` back: their posters were up before the windows (a code
    issued after a window cannot have been scanned in it, so exposures skip it)."""
    from django.utils import timezone

    from venues.models import VenueCode

    issued = timezone.now().replace(microsecond=0) - dt.timedelta(days=days)
    VenueCode.objects.filter(venue_id__in=venue_ids).update(issued_at=issued)


def venue_codes(venue_ids) -> dict[uuid.UUID, object]:
    """Each venue's code as a phone reads it: the QR text, verified by the reference client."""
    from tests.phone import verify_venue_code
    from venues.codes import code_qr_text, qr_prefix
    from venues.keys import jwks_document
    from venues.models import VenueCode
    from venues.selectors import revocations_document

    prefix = qr_prefix()
    jwks, revocations = jwks_document(), revocations_document()
    codes = VenueCode.objects.filter(venue_id__in=venue_ids, version=1).select_related("venue", "signing_key")
    return {
        code.venue_id: verify_venue_code(
            code_qr_text(code), prefix=prefix, issuer=prefix[: -len("/c/#")], jwks=jwks, revocations=revocations
        )
        for code in codes
    }


def plant(visits: list[phones.PlantedVisit], codes: dict) -> int:
    """Store the planted phones (devices and their tokens, from the reference client) by COPY."""
    from django.conf import settings
    from django.db import transaction

    from notifications.partitions import visit_token_partitions_ensure
    from tests.phone import visit_tokens

    datagen.devices_copy([visit.device_id.bytes for visit in visits])
    by_date: dict[dt.date, list[tuple[bytes, bytes]]] = {}
    for visit in visits:
        for date, tokens in visit_tokens(codes[visit.venue_id].vk, visit.t_in, visit.t_out, settings.TIME_ZONE).items():
            by_date.setdefault(date, []).extend((token, visit.device_id.bytes) for token in tokens)
    with transaction.atomic():
        visit_token_partitions_ensure(by_date)
        datagen.copy_visit_tokens(
            datagen.visit_token_rows(date, [t for t, _ in rows], [d for _, d in rows]) for date, rows in by_date.items()
        )
    return sum(len(rows) for rows in by_date.values())


def case_import(windows: list[phones.Window], *, reference: str, actor):
    """A draft case with the windows as case visits, through the officials' CSV path (500 rows a file)."""
    from django.utils import timezone

    from notifications.cases import case_visits_csv_parse, case_visits_import
    from notifications.models import Case

    case = Case.objects.create(reference=reference, confirmed_on=timezone.localdate())
    for start in range(0, len(windows), 500):
        lines = ["venue_id,start,end"] + [
            f"{w.venue_id},{dt.datetime.fromtimestamp(w.start, phones.HONG_KONG).isoformat()},"
            f"{dt.datetime.fromtimestamp(w.end, phones.HONG_KONG).isoformat()}"
            for w in windows[start : start + 500]
        ]
        rows = case_visits_csv_parse("\n".join(lines))
        case_visits_import(case=case, rows=rows, actor=actor)
    return case


def notifications_of(case, windows) -> dict[tuple, str]:
    from notifications.models import CaseVisit, Notification

    key_of = {(w.venue_id, w.start): w.case_visit_key for w in windows}
    visit_key = {
        cv_id: key_of[(venue_id, int(start.timestamp()))]
        for cv_id, venue_id, start in CaseVisit.objects.filter(case=case).values_list("id", "venue_id", "start")
    }
    return {
        (device_id, visit_key[cv_id]): risk
        for device_id, cv_id, risk in Notification.objects.filter(case_visit__case=case).values_list(
            "device_id", "case_visit_id", "risk"
        )
    }


def explain(statement) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a captured statement, in a transaction that is rolled back."""
    from django.db import connection, transaction

    sql, params, _ = statement
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    return plan


def execution_ms(plan: str) -> str:
    lines = [line for line in plan.splitlines() if line.startswith("Execution Time")]
    return lines[0].split(":", 1)[1].strip() if lines else "?"


def select_one_ms(samples: int = 200) -> float:
    from django.db import connection

    timings = []
    with connection.cursor() as cursor:
        for _ in range(samples):
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            timings.append(time.perf_counter() - started)
    return percentile(timings, 0.5) * 1000


def bare_join_seconds(case) -> float:
    """The join alone: the case's exposure tokens against each date's partition, counted."""
    from django.db import connection

    from notifications.models import ExposureToken, VisitToken

    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT DISTINCT e.date FROM "{ExposureToken._meta.db_table}" e '
            "JOIN notifications_casevisit cv ON cv.id = e.case_visit_id WHERE cv.case_id = %s",
            [case.pk],
        )
        dates = [row[0] for row in cursor.fetchall()]
        started = time.perf_counter()
        for date in dates:
            cursor.execute(
                f'SELECT count(*) FROM "{ExposureToken._meta.db_table}" e '
                f'JOIN "{VisitToken._meta.db_table}" v ON v.date = e.date AND v.token = e.token '
                "JOIN notifications_casevisit cv ON cv.id = e.case_visit_id "
                "WHERE cv.case_id = %s AND e.date = %s AND v.date = %s",
                [case.pk, date, date],
            )
            cursor.fetchone()
        return time.perf_counter() - started


def index_used(plan: str) -> str:
    """The scan nodes of the plan that read visit-token partitions, e.g. ``Index Scan using …_token_idx``."""
    found = set()
    for line in plan.splitlines():
        node = line.strip().removeprefix("->").strip()
        if "visittoken" in node and "Scan" in node:
            found.add(node.split(" (actual")[0].split(" on ")[0])
    return "; ".join(sorted(found)) or "none"


def shortened(plan: str, width: int = 220) -> str:
    """The plan with its long literal lists cut, so the report stays readable."""
    return "\n".join(line if len(line) <= width else line[:width] + " …" for line in plan.splitlines())


def publication_prepare(date: dt.date, official, label: str) -> dict:
    """Fresh venues, 1,000 windows on ``date``, the planted phones stored, the case imported."""
    from bench.b5_codes import chain_csv_rows, venues_bulk_register

    venues = venues_bulk_register(chain_csv_rows(CASE_VENUES + DECOY_VENUES, label), owner=official)
    backdate_codes([venue.id for venue in venues], days=30)
    case_venues = [venue.id for venue in venues[:CASE_VENUES]]
    decoys = [venue.id for venue in venues[CASE_VENUES:]]
    windows = phones.plan_case_visits(case_venues, [date], CASE_VISITS)
    planted = phones.plan_phones(windows, decoys, high=4, low=2, seed=zlib.crc32(label.encode()))
    planted_tokens = plant(planted, venue_codes([venue.id for venue in venues]))
    case = case_import(windows, reference=label.upper(), actor=official)
    return {"windows": windows, "planted": planted, "planted_tokens": planted_tokens, "case": case}


def publish_end_to_end(case, official, stack) -> float:
    """Seconds from calling the publish service until the worker has committed every match."""
    from notifications.tasks import case_publish_and_match

    with load.tasks_to_broker(stack.queue):
        started = time.perf_counter()
        case_publish_and_match(case=case, actor=official)
        drained = load.drain_wait(stack, timeout=END_TO_END_TIMEOUT, interval=0.005)
        seconds = time.perf_counter() - started
    check(drained, f"the worker ran the publication's matching within {END_TO_END_TIMEOUT:.0f} s")
    return seconds


def matching_statement(case, date: dt.date):
    """The first matching statement of the case's chunk, captured by running the chunk in-process
    in a transaction that is rolled back (its notifications exist: it writes nothing new)."""
    from django.db import connection, transaction

    from notifications import matching

    ids = sorted(case.visits.values_list("id", flat=True))[: matching.CASE_VISIT_BATCH]
    timer = StatementTimer()
    with transaction.atomic(), connection.execute_wrapper(timer):
        matching.publication_match(case_visit_ids=ids, date=date)
        transaction.set_rollback(True)
    return timer.matching()[0]


def one_size(size: int, index: int, stack, official) -> dict:
    from django.db import connection

    from notifications.cases import case_withdraw
    from notifications.models import MatchingRun
    from notifications.partitions import partition_name

    date = size_date(size, index)
    loaded, load_seconds = datagen.background_ensure({date: size})
    label = f"b2-{uuid.uuid4().hex[:6]}"
    prepared = {name: publication_prepare(date, official, f"{label}-{name}") for name in PUBLICATIONS}
    with connection.cursor() as cursor:
        cursor.execute(f'VACUUM (ANALYZE) "{partition_name(date)}"')
        cursor.execute(f"SELECT count(*) FROM {partition_name(date)}")
        (partition_rows,) = cursor.fetchone()

    results = {}
    for name in PUBLICATIONS:
        case = prepared[name]["case"]
        seconds = publish_end_to_end(case, official, stack)
        runs = list(MatchingRun.objects.filter(case=case).values_list("duration_ms", flat=True))
        actual = notifications_of(case, prepared[name]["windows"])
        expected = phones.oracle(prepared[name]["planted"], prepared[name]["windows"])
        check(runs, "the worker recorded the publication's matching runs")
        check(actual == expected, f"B2 notifications equal the oracle ({len(actual)} vs {len(expected)} expected)")
        planted_devices = {visit.device_id for visit in prepared[name]["planted"]}
        check(all(device in planted_devices for device, _ in actual), "no background device was notified")
        results[name] = {"seconds": seconds, "runs_ms": runs, "notifications": len(actual)}

    case = prepared[PUBLICATIONS[0]]["case"]
    bare = bare_join_seconds(case)
    plan = explain(matching_statement(case, date))
    check("visittoken" in plan, "the plan reads the visit-token partitions")
    for name in PUBLICATIONS:
        # Withdrawn, so the next size is measured with the same number of live published cases.
        case_withdraw(case=prepared[name]["case"], actor=official, reason="benchmark done")
    return {
        "size": size, "date": date, "partition_rows": partition_rows, "loaded": loaded,
        "load_seconds": load_seconds, "results": results, "bare": bare, "plan": plan,
        "planted_tokens": sum(prepared[name]["planted_tokens"] for name in PUBLICATIONS),
    }  # fmt: skip


def run(options: Options) -> Report:
    from django.contrib.auth import get_user_model

    from bench.b5_codes import _signing_key_ready
    from notifications.partitions import visit_tokens_stored_estimate

    sizes = getattr(options.extra, "sizes", None) or SIZES[options.scale]
    report = Report("B2 publication matching end to end: 1,000 case visits at one date partition", options)
    _signing_key_ready()
    official, _ = get_user_model().objects.get_or_create(username="bench-official", defaults={"is_staff": True})
    with load.deployed_stack(options.database_url) as stack:
        results = [one_size(size, index, stack, official) for index, size in enumerate(sizes)]
    round_trip = select_one_ms()
    rows = []
    for result in results:
        for name in PUBLICATIONS:
            measured = result["results"][name]
            rows.append([
                fmt(result["partition_rows"]), str(result["date"]), name, f"{measured['seconds']:.3f}",
                f"{sum(measured['runs_ms']) / 1000:.3f}", str(len(measured["runs_ms"])),
                f"{max(measured['runs_ms']) / 1000:.3f}", fmt(measured["notifications"]),
                f"{result['bare']:.3f}", index_used(result["plan"]), "≤ 2 s",
            ])  # fmt: skip
    report.table(
        "Publication of 1,000 case visits, from the publish service to the worker's committed notifications",
        ["partition rows", "date", "publication", "end to end s", "matching tasks s (worker)", "tasks",
         "slowest task s", "notifications", "bare join s (limit)", "visit-token access", "target"],
        rows,
    )  # fmt: skip
    report.table(
        "Data generation (inside PostgreSQL; kept between runs)",
        ["partition", "rows generated now", "seconds", "rows/s", "planted tokens (reference client, COPY)"],
        [
            [str(r["date"]), fmt(r["loaded"]), f"{r['load_seconds']:.1f}",
             fmt(r["loaded"] / r["load_seconds"]) if r["load_seconds"] else "(kept)", fmt(r["planted_tokens"])]
            for r in results
        ],
    )  # fmt: skip
    report.table(
        "Local limits and memory",
        ["what", "value"],
        [
            ["SELECT 1 round trip (median)", f"{round_trip:.3f} ms"],
            ["visit tokens stored, all dates (planner estimate)", fmt(visit_tokens_stored_estimate())],
            ["bench process peak RSS", f"{peak_rss_mib(os.getpid()):.0f} MiB"],
        ],
    )
    largest = results[-1]
    report.block(
        f"EXPLAIN (ANALYZE, BUFFERS) of the first matching statement at the {largest['partition_rows']:,}-row "
        f"partition, re-run after the publications (execution {execution_ms(largest['plan'])})",
        shortened(largest["plan"]),
    )
    report.note(
        "Correctness at each size and publication: the notifications equal the interval oracle for every planted "
        f"phone ({largest['results']['first']['notifications']:,} at the last: 4 phones around each window, 2 the "
        "same day elsewhere in time, 1 decoy at the same time in another venue); no background or decoy device "
        "notified."
    )
    return report


def _add_arguments(parser):
    parser.add_argument(
        "--sizes",
        type=lambda text: [parse_size(part) for part in text.split(",")],
        default=None,
        help="partition sizes to run, e.g. 10M,80M (default: by scale)",
    )


def main(argv=None) -> None:
    options = parse_options("bench.b2_matching", __doc__.splitlines()[0], _add_arguments, argv=argv)
    django_setup(options)
    run(options).emit()


if __name__ == "__main__":
    main()
