"""B1 ingest: realistic visit uploads through gunicorn into PostgreSQL with millions of tokens stored.

Each upload is one phone's check-ins of today and yesterday (five visits of 30-150 minutes:
about 30 tokens), derived by the reference phone client from verified venue codes and POSTed
to /api/v1/visits. gunicorn runs the production settings (DEBUG off, throttles counted in
Redis), and a Celery worker on Redis takes the matching task each upload enqueues. Today's
partition is preloaded by COPY, on top of what B2 stored.

Local limits in the same run: a no-op GET (/api/v1/config) through the same gunicorn at the
same concurrency, and a raw COPY of random tokens into the same table.

Target on this machine: ≥ 25,000 tokens/s end to end, ≥ 0.4 of the raw COPY rate, p99 ≤ 100 ms.
Correctness at every scale: every request accepted, the stored rows of the phones equal the
distinct tokens they sent, and none of them was notified (their venues have no case).
"""

import datetime as dt
import os
import random
import threading
import time

from bench import datagen, load
from bench.common import Options, Report, Stopwatch, check, django_setup, fmt, parse_options, rate
from bench.processes import CpuMeter, database_backends, descendants

SIZES = {
    "small": {"preload": 50_000, "phones": 100, "uploads": 300, "concurrency": 8, "web_workers": 3, "noop": 2.0},
    "medium": {"preload": 2_000_000, "phones": 2_000, "uploads": 12_000, "concurrency": 12, "web_workers": 4,
               "noop": 5.0},
    "full": {"preload": 20_000_000, "phones": 5_000, "uploads": 15_000, "concurrency": 12, "web_workers": 4,
             "noop": 10.0},
}  # fmt: skip
VISITS_PER_UPLOAD = 5
VENUES = 200


def ingest_dates() -> list[dt.date]:
    from django.utils import timezone

    today = timezone.localdate()
    return [today - dt.timedelta(days=1), today]


def venue_pool(count: int, label: str) -> list:
    """Venues registered through the bulk path, as phones read their codes."""
    from django.contrib.auth import get_user_model

    from bench.b2_matching import venue_codes
    from bench.b5_codes import _signing_key_ready, chain_csv_rows, venues_bulk_register

    _signing_key_ready()
    owner, _ = get_user_model().objects.get_or_create(username="bench-chain-owner")
    venues = venues_bulk_register(chain_csv_rows(count, label), owner=owner)
    return list(venue_codes([venue.id for venue in venues]).values())


def work_items(phones: list, codes: list, count: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    dates = ingest_dates()
    return [
        (phones[index % len(phones)], load.random_visits(codes, rng, visits=VISITS_PER_UPLOAD, days=dates))
        for index in range(count)
    ]


def expected_rows(work: list[tuple]) -> set[tuple]:
    """The distinct (date, token, device) the uploads carry, derived by the reference client."""
    from django.conf import settings

    from tests.phone import visit_tokens

    rows = set()
    for phone, visits in work:
        for code, t_in, t_out in visits:
            for date, tokens in visit_tokens(code.vk, t_in, t_out, settings.TIME_ZONE).items():
                rows.update((date, token, phone.device_id) for token in tokens)
    return rows


def stored_rows(phones: list) -> tuple[int, int]:
    """(rows, distinct (date, token, device)) stored for the phones: the table has no unique key by
    design (notifications/migrations/0005), so a token a phone sends twice may be stored twice."""
    from django.db import connection

    from notifications.models import VisitToken

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT (date, token, device_id)) "
            f'FROM "{VisitToken._meta.db_table}" WHERE date = ANY(%s) AND device_id = ANY(%s::uuid[])',
            [ingest_dates(), [phone.device_id for phone in phones]],
        )
        return cursor.fetchone()


def raw_copy_rate(rows: int) -> tuple[int, float]:
    """The local limit: random tokens COPYed into today's partition of the same table, rows/s."""
    from django.db import transaction

    from notifications.partitions import visit_token_partitions_ensure

    today = ingest_dates()[-1]
    devices = datagen.device_pool(10_000, seed="bench-raw-copy")
    chunks = list(datagen.random_chunks(today, rows, devices))  # built before the clock starts
    with Stopwatch() as copying, transaction.atomic():
        visit_token_partitions_ensure([today])
        datagen.copy_visit_tokens(chunks)
    return rows, rate(rows, copying.seconds)


class RssSampler:
    """Samples the servers' peak RSS once a second while the load runs."""

    def __init__(self, stack):
        self.stack = stack
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stop.wait(1.0):
            self.stack.sample_rss()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.stack.sample_rss()


def rss_rows(stack) -> list[list[str]]:
    rows = []
    for server in [stack.web, *stack.workers]:
        largest, master = server.peak_rss()
        rows.append([server.name, f"{largest:.0f}", f"{master:.0f}", "≤ 300"])
    return rows


def run(options: Options) -> Report:
    from notifications.models import Notification
    from notifications.partitions import visit_tokens_stored_estimate

    sizes = SIZES[options.scale]
    report = Report("B1 ingest: visit uploads through gunicorn into PostgreSQL", options)
    dates = ingest_dates()
    loaded, load_seconds = datagen.background_ensure({dates[-1]: sizes["preload"]})
    codes = venue_pool(VENUES, f"b1-{int(time.time())}")
    stored_before = visit_tokens_stored_estimate()

    with load.server_stack(options.database_url, web_workers=sizes["web_workers"]) as stack:
        config = load.phone_config(stack.base_url)
        phones = load.phones_register(sizes["phones"], config)
        work = work_items(phones, codes, sizes["uploads"], seed=sizes["uploads"])
        warmup = work_items(phones, codes, 2 * sizes["concurrency"], seed=1)
        load.uploads_run(stack.base_url, warmup, concurrency=sizes["concurrency"])
        meter = CpuMeter({
            "gunicorn (master and workers)": lambda: descendants(stack.web.pid),
            "Celery worker (matching tasks)": lambda: [p for w in stack.workers for p in descendants(w.pid)],
            "PostgreSQL backends of this database": database_backends,
            "load generator (this process)": lambda: [os.getpid()],
        })  # fmt: skip
        with RssSampler(stack):
            meter.start()
            result = load.uploads_run(stack.base_url, work, concurrency=sizes["concurrency"])
            backlog = stack.backlog()
            drain_seconds = load.drain(stack)
            cpu = meter.stop()
            noop = load.noop_run(stack.base_url, concurrency=sizes["concurrency"], seconds=sizes["noop"])
        memory = rss_rows(stack)

    check(not result.errors, f"every upload accepted ({len(result.errors)} failed: {result.errors[:3]})")
    expected = expected_rows(warmup + work)
    rows, distinct = stored_rows(phones)
    check(distinct == len(expected), f"the phones' stored tokens equal those they sent ({distinct} vs {len(expected)})")
    device_ids = [phone.device_id for phone in phones]
    check(not Notification.objects.filter(device_id__in=device_ids).exists(), "no ingest phone was notified")

    copy_rows, copy_rate = raw_copy_rate(max(100_000, min(result.tokens, 2_000_000)))
    tokens_per_second = rate(result.tokens, result.seconds)
    options.context["b1_requests_per_second"] = rate(result.requests, result.seconds)

    report.table(
        "Uploads (closed loop, one keep-alive connection per concurrent phone)",
        ["what", "value", "local limit in the same run", "ratio", "target"],
        [
            ["tokens/s", fmt(tokens_per_second), f"{fmt(copy_rate)} rows/s raw COPY ({fmt(copy_rows)} rows)",
             f"{tokens_per_second / copy_rate:.3f}", "≥ 25,000/s and ≥ 0.4 of COPY"],
            ["requests/s", fmt(rate(result.requests, result.seconds)),
             f"{fmt(rate(noop.requests, noop.seconds))} req/s no-op GET /api/v1/config",
             f"{rate(result.requests, result.seconds) / max(1e-9, rate(noop.requests, noop.seconds)):.2f}", ""],
            ["latency p50 / p99 ms", f"{result.p(0.5):.1f} / {result.p(0.99):.1f}",
             f"{noop.p(0.5):.1f} / {noop.p(0.99):.1f} ms no-op", "", "p99 ≤ 100 ms"],
            ["uploads, tokens, tokens per upload", f"{fmt(result.requests)}, {fmt(result.tokens)}, "
             f"{result.tokens / max(1, result.requests):.1f}", "", "", ""],
            ["concurrency, gunicorn sync workers", f"{sizes['concurrency']}, {sizes['web_workers']}", "", "", ""],
            ["load generator CPU (this process)", f"{result.client_cpu_seconds / result.seconds:.2f} cores", "", "",
             ""],
            ["matching tasks queued at the end, drained in", f"{fmt(backlog)}, {drain_seconds:.1f} s",
             f"{rate(backlog, drain_seconds):.0f} tasks/s, one worker process", "", ""],
            ["stored rows of the phones, distinct", f"{fmt(rows)}, {fmt(distinct)}", "", "", ""],
            ["visit tokens stored before the run", fmt(stored_before), "", "", ""],
        ],
    )  # fmt: skip
    report.table(
        "Where the CPU went, uploads and the matching backlog they left (CPU ms per upload)",
        ["processes", "CPU s", "ms per upload", "share"],
        [[name, f"{seconds:.1f}", f"{seconds * 1000 / max(1, result.requests):.1f}",
          f"{seconds / max(1e-9, sum(cpu.values())):.0%}"] for name, seconds in cpu.items()],
    )  # fmt: skip
    report.table("Peak RSS (MiB)", ["process", "largest worker", "master", "target"], memory)
    if loaded:
        report.note(f"Preloaded {fmt(loaded)} tokens into today's partition by COPY in {load_seconds:.1f} s.")
    report.note(
        f"Correctness: {fmt(result.requests)} uploads, all 202; the {fmt(len(phones))} phones' distinct stored "
        f"(date, token) equal the {fmt(len(expected))} they sent; none of them was notified."
    )
    return report


def main(argv=None) -> None:
    options = parse_options("bench.b1_ingest", __doc__.splitlines()[0], argv=argv)
    django_setup(options)
    run(options).emit()


if __name__ == "__main__":
    main()
