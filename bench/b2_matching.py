"""B2 publication matching: 1,000 case visits (one-hour windows) against N stored visit tokens.

The stored tokens are spread over five local dates (at 100M, 20M a day: a Hong Kong peak day
is 60-100M). For each size the benchmark registers fresh venues through the bulk path,
plants phones around 1,000 case-visit windows (tokens computed by the reference phone
client, stored by COPY), imports the case visits through the officials' CSV path and
publishes the case with ``case_publish_and_match``. With no broker the matching tasks run in-process
on commit, one after another, so the figure is one worker's. The matching statements are
timed one by one; the first is explained (EXPLAIN ANALYZE, rolled back).

Local limits in the same run: a trivial query's round trip, and the bare join (the same
exposure tokens joined to the same partitions, counted, nothing written).

Target on this machine: ≤ 0.5 s for 1,000 case visits at 100M tokens, and less than twice the
10M time. Correctness at every scale: the notifications equal the oracle's (bench/phones.py)
for every planted phone, none goes to a decoy or a background device.
"""

import datetime as dt
import os
import time
import uuid

from bench import datagen, phones
from bench.common import Options, Report, Stopwatch, check, django_setup, fmt, parse_options, percentile
from bench.processes import peak_rss_mib

SIZES = {"small": [100_000], "medium": [10_000_000], "full": [10_000_000, 30_000_000, 100_000_000]}
DATE_COUNT = 5
CASE_VISITS = 1000
CASE_VENUES = 100
DECOY_VENUES = 20


def parse_size(text: str) -> int:
    text = text.strip().upper()
    factor = {"K": 1_000, "M": 1_000_000, "B": 1_000_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KMB")) * factor)


def bench_dates() -> list[dt.date]:
    """Five retained local dates that neither ingest (today, yesterday) nor the purge touch."""
    from django.utils import timezone

    today = timezone.localdate()
    return [today - dt.timedelta(days=offset) for offset in range(2, 2 + DATE_COUNT)]


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


def explain_after_analyze(statement) -> str:
    """The same statement's plan once the small tables a publication just wrote have statistics.

    Right after publishing, ExposureToken and CaseVisit hold rows autovacuum has not analysed
    yet; this shows what the plan becomes when they have been (the fix is one ANALYZE of
    tables of a few thousand rows in the publication task)."""
    from django.db import connection

    from notifications.models import Case, CaseVisit, ExposureToken

    with connection.cursor() as cursor:
        for model in (ExposureToken, CaseVisit, Case):
            cursor.execute(f'ANALYZE "{model._meta.db_table}"')
    return explain(statement)


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


def one_size(size: int, report_rows: list, plans: dict, options: Options) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from bench.b5_codes import _signing_key_ready, chain_csv_rows, venues_bulk_register
    from notifications.cases import case_withdraw
    from notifications.models import MatchingRun
    from notifications.partitions import visit_tokens_stored_estimate
    from notifications.tasks import case_publish_and_match

    dates = bench_dates()
    per_date = size // DATE_COUNT
    loaded, load_seconds = datagen.background_ensure(dict.fromkeys(dates, per_date))

    _signing_key_ready()
    official, _ = get_user_model().objects.get_or_create(username="bench-official", defaults={"is_staff": True})
    run = uuid.uuid4().hex[:6]
    venues = venues_bulk_register(chain_csv_rows(CASE_VENUES + DECOY_VENUES, f"b2-{run}"), owner=official)
    backdate_codes([venue.id for venue in venues], days=30)
    case_venues = [venue.id for venue in venues[:CASE_VENUES]]
    decoys = [venue.id for venue in venues[CASE_VENUES:]]
    windows = phones.plan_case_visits(case_venues, dates, CASE_VISITS)
    planted = phones.plan_phones(windows, decoys, high=4, low=2, seed=size)
    codes = venue_codes([venue.id for venue in venues])
    planted_tokens = plant(planted, codes)
    datagen.vacuum_analyze()
    expected = phones.oracle(planted, windows)

    case = case_import(windows, reference=f"BENCH-B2-{run}", actor=official)
    timer = StatementTimer()
    with connection.execute_wrapper(timer), Stopwatch() as publishing:
        case_publish_and_match(case=case, actor=official)
    matching = timer.matching()
    runs = list(MatchingRun.objects.filter(case=case).values_list("duration_ms", flat=True))

    actual = notifications_of(case, windows)
    check(len(matching) > 0, "publication ran the matching statements")
    check(actual == expected, f"B2 notifications equal the oracle ({len(actual)} vs {len(expected)} expected)")
    planted_devices = {visit.device_id for visit in planted}
    check(all(device in planted_devices for device, _ in actual), "no background device was notified")

    bare = bare_join_seconds(case)
    plan = explain(matching[0])
    analyzed_plan = explain_after_analyze(matching[0])
    # Withdrawn, so the next size is measured with the same number of live published cases.
    case_withdraw(case=case, actor=official, reason="benchmark done")
    plans[size] = (plan, analyzed_plan)
    check("visittoken" in plan, "the plan reads the visit-token partitions")
    stored = visit_tokens_stored_estimate()
    match_seconds = sum(duration for _, _, duration in matching)
    report_rows.append([
        fmt(stored), fmt(per_date), f"{publishing.seconds:.3f}", f"{match_seconds:.3f}", str(len(matching)),
        f"{max(d for _, _, d in matching):.3f}", fmt(len(actual)), f"{bare:.3f}", index_used(plan),
    ])  # fmt: skip
    return {
        "size": size, "loaded": loaded, "load_seconds": load_seconds, "match_seconds": match_seconds,
        "publish_seconds": publishing.seconds, "planted_tokens": planted_tokens, "runs_ms": runs,
        "notifications": len(actual),
    }  # fmt: skip


def run(options: Options) -> Report:
    sizes = getattr(options.extra, "sizes", None) or SIZES[options.scale]
    report = Report("B2 publication matching: 1,000 case visits against N stored tokens", options)
    rows, plans, results = [], {}, []
    for size in sizes:
        results.append(one_size(size, rows, plans, options))
    round_trip = select_one_ms()
    report.table(
        "Publication of 1,000 case visits (one worker, tasks in-process)",
        ["stored tokens", "tokens per date", "publish s (all)", "matching SQL s", "statements", "slowest s",
         "notifications", "bare join s (limit)", "visit-token access"],
        rows,
    )  # fmt: skip
    base = results[0]["match_seconds"] or 1e-9
    report.table(
        "Growth and data generation",
        ["stored tokens", "matching SQL s", "× first size", "rows loaded by COPY", "COPY s", "COPY rows/s"],
        [
            [fmt(r["size"]), f"{r['match_seconds']:.3f}", f"{r['match_seconds'] / base:.2f}", fmt(r["loaded"]),
             f"{r['load_seconds']:.1f}", fmt(r["loaded"] / r["load_seconds"]) if r["load_seconds"] else "(stored)"]
            for r in results
        ],
    )  # fmt: skip
    report.table(
        "Local limits and memory",
        ["what", "value"],
        [
            ["SELECT 1 round trip (median)", f"{round_trip:.3f} ms"],
            ["bench process peak RSS (publishes and matches in-process)", f"{peak_rss_mib(os.getpid()):.0f} MiB"],
        ],
    )
    largest = max(plans)
    plan, analyzed_plan = plans[largest]
    report.block(
        f"EXPLAIN (ANALYZE, BUFFERS) of the first matching statement at {largest:,} tokens, as published "
        f"(execution {execution_ms(plan)})",
        shortened(plan),
    )
    report.block(
        f"The same statement after ANALYZE of ExposureToken, CaseVisit and Case "
        f"(execution {execution_ms(analyzed_plan)})",
        shortened(analyzed_plan),
    )
    report.note(
        f"Correctness at each size: the notifications of the case equal the interval oracle for every planted "
        f"phone ({results[-1]['notifications']:,} at the last size: 4 phones around each window, 2 the same day "
        "elsewhere in time, 1 decoy at the same time in another venue); no background or decoy device notified."
    )
    report.note("Target: ≤ 0.5 s at 100M tokens and < 2× the 10M time. Target time is the matching SQL column.")
    return report


def _add_arguments(parser):
    parser.add_argument(
        "--sizes",
        type=lambda text: [parse_size(part) for part in text.split(",")],
        default=None,
        help="stored-token sizes to run, e.g. 10M,30M (default: by scale)",
    )


def main(argv=None) -> None:
    options = parse_options("bench.b2_matching", __doc__.splitlines()[0], _add_arguments, argv=argv)
    django_setup(options)
    run(options).emit()


if __name__ == "__main__":
    main()
