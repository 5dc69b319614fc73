"""B1 ingest, sustained: 40-token uploads through the deployed stack until matching has caught up.

The servers are deploy/Procfile's ``web`` (gunicorn with deploy/gunicorn.conf.py), ``worker``
and ``beat``, with their defaults, on the production settings. Each upload is one phone's
check-ins of today and yesterday (five visits of 30-150 minutes: 40 tokens on average),
derived by the reference phone client (tests.phone) from verified venue codes and serialised
*before* the clock starts; ``wrk`` (bench/wrk_uploads.lua) replays every body once over
keep-alive connections as fast as the server answers. The clock runs from wrk's start until
the last upload's matching is done: no matching task queued or taken and no date left in
the upload backlog (``DeployedStack.drained``), not until the last 202.

CPU is counted per process tree from /proc, utime + stime of the live processes plus the
cutime + cstime their parents collected from the children they reaped, as deltas over the
run: gunicorn's master and its workers, Celery's main process and its pool, beat, the whole
PostgreSQL server (postmaster, every backend that came and went, the WAL writer and
checkpointer), Redis, and wrk (from the kernel's rusage when it exits).

B3 is measured in the same saturated run (bench/b3_late.py reports it): probe phones that
visited a venue of a published case upload every second beside wrk's load, and this process
polls the notification table until each probe's notification is visible.

Then, against the same servers: the open-loop latency of uploads arriving at a fixed 300/s
(bench/openloop.py, no coordinated omission), and the local limits: a bare Django view
(bench/urls.py) through the same gunicorn, and a raw COPY into the same partition.

Targets on this machine: ≥ 16,000 tokens/s sustained, ≤ 5 ms CPU per upload without the load
generator, open-loop p99 ≤ 100 ms at 300 uploads/s. Correctness at every scale: every upload
answered 202, the phones' stored (date, token, device) equal those they sent, no ingest
phone notified, each probe notified exactly as the interval oracle says.
"""

import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from bench import datagen, load, phones
from bench.common import (
    PROJECT_DIR,
    Options,
    Report,
    Stopwatch,
    check,
    django_setup,
    fmt,
    parse_options,
    percentile,
    rate,
)
from bench.processes import (
    CpuMeter,
    other_database_backends,
    postmaster_pid,
    process_cpu_seconds,
    redis_server_pid,
    tree_cpu_seconds,
)

SIZES = {
    "small": {"preload": 50_000, "phones": 100, "uploads": 600, "connections": 16, "open_rate": 50.0,
              "open_seconds": 4, "bare_seconds": 2},
    "medium": {"preload": 2_000_000, "phones": 2_000, "uploads": 12_000, "connections": 32, "open_rate": 300.0,
               "open_seconds": 15, "bare_seconds": 5},
    "full": {"preload": 20_000_000, "phones": 5_000, "uploads": 60_000, "connections": 64, "open_rate": 300.0,
             "open_seconds": 60, "bare_seconds": 10},
}  # fmt: skip
VISITS_PER_UPLOAD = 5
VENUES = 200
PROBE_VENUES = 10
PROBE_EVERY_SECONDS = 1.0
POLL_SECONDS = 0.05
DRAIN_TIMEOUT_SECONDS = 1800.0
WRK = "wrk"


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


def work_items(phones_: list, codes: list, count: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    dates = ingest_dates()
    return [
        (phones_[index % len(phones_)], load.random_visits(codes, rng, visits=VISITS_PER_UPLOAD, days=dates))
        for index in range(count)
    ]


# --- uploads built before the clock starts -------------------------------------------------


class _Accepted:
    status_code = 202

    def __init__(self, tokens: int):
        self.tokens = tokens

    def json(self) -> dict:
        return {"accepted": self.tokens}


class RecordingHttp:
    """Stands in for the phone's HTTP client: keeps each upload's JSON body instead of sending it."""

    def __init__(self):
        self.bodies: list[str] = []

    def request(self, method, url, *, headers=None, json=None, **kwargs):
        self.bodies.append(_json_dumps(json))
        return _Accepted(sum(len(day["tokens"]) for day in json["days"]))


def _json_dumps(body) -> str:
    return json.dumps(body, separators=(",", ":"))


def uploads_built(work):
    """Each (registered phone, visits) of ``work`` checked in and uploaded by the reference
    client, recorded instead of sent: yields (phone, its request bodies)."""
    from tests.phone import Phone

    for registered, visits in work:
        phone = Phone(RecordingHttp())
        phone.config, phone.device_id, phone.secret = registered.config, registered.device_id, registered.secret
        for code, t_in, t_out in visits:
            phone.check_in(code, t_in, t_out)
        phone.upload()
        yield phone, phone.http.bodies


def uploads_prepare(work: list[tuple], path: Path) -> set[int]:
    """Write one line per upload (secret, tab, body) as the reference client builds them;
    returns the hashes of the distinct (date, token, device) they carry."""
    sent: set[int] = set()
    with path.open("w", encoding="utf-8") as lines, _devices_path(path).open("w", encoding="utf-8") as devices:
        for phone, bodies in uploads_built(work):
            for body in bodies:
                lines.write(f"{phone.secret}\t{body}\n")
                devices.write(f"{phone.device_id}\n")
            sent.update(
                hash((date, token, phone.device_id)) for date, day in phone.tokens_by_date().items() for token in day
            )
    return sent


def _devices_path(requests: Path) -> Path:
    """Beside each request file, the device id of each of its lines (wrk needs only the secret)."""
    return requests.with_suffix(".devices")


def stored_distinct(device_ids: list[str]) -> set[int]:
    """Hashes of the distinct (date, token, device) stored for the devices (the table has no
    unique key by design, notifications/migrations/0005, so a token sent twice may be stored twice)."""
    from django.db import connection

    from notifications.models import VisitToken

    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT DISTINCT date, token, device_id::text FROM "{VisitToken._meta.db_table}" '
            "WHERE date = ANY(%s) AND device_id = ANY(%s::uuid[])",
            [ingest_dates(), device_ids],
        )
        return {hash((date, bytes(token), device)) for date, token, device in cursor.fetchall()}


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


# --- the load generators -----------------------------------------------------------------


def _wait_child(process: subprocess.Popen) -> float:
    """Reap a child and return the CPU seconds the kernel says it used."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def wrk_uploads(port: int, requests: Path, *, connections: int, on_tick=None) -> dict:
    """Replay every upload of ``requests`` once with wrk; returns its JSON summary plus
    ``cpu_seconds`` and ``answered_at`` (perf_counter when the last upload was answered)."""
    threads = 1
    marker = Path(tempfile.mkdtemp(prefix="lh-bench-wrk-")) / "done"
    command = [
        WRK, "-t", str(threads), "-c", str(connections), "-d", "3600s", "--timeout", "60s",
        "-s", str(PROJECT_DIR / "bench" / "wrk_uploads.lua"), f"http://127.0.0.1:{port}",
        "--", str(requests), str(threads), str(marker),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while not all(Path(f"{marker}.{index}").exists() for index in range(threads)):
        if process.poll() is not None:
            raise RuntimeError(f"wrk exited early: {process.stdout.read()}")
        if on_tick is not None:
            on_tick()
        time.sleep(0.02)
    returned_at = time.perf_counter()
    process.send_signal(signal.SIGINT)
    output = process.stdout.read()
    cpu = _wait_child(process)
    shutil.rmtree(marker.parent, ignore_errors=True)
    summary = json.loads(output.strip().splitlines()[-1])
    # wrk waits STALL_SECONDS of silence for answers it lost (a connection that broke): the
    # last upload was answered at its last answer (whole seconds, wall clock), not then.
    answered_at = min(returned_at, returned_at - (time.time() - summary["last_answer_epoch"]) + 1.0)
    return {**summary, "cpu_seconds": cpu, "answered_at": answered_at}


def uploads_resend_missing(base_url: str, requests: Path) -> tuple[int, int]:
    """Re-send the uploads of ``requests`` the database lacks (their connection broke under
    wrk), as a phone retries; returns (uploads, tokens) re-sent. An upload is present if every
    one of its tokens is stored for its device (one token alone may be another upload's: a
    day token repeats across a phone's visits to one venue)."""
    import base64

    from django.db import connection

    from notifications.models import VisitToken

    lines = requests.read_text(encoding="utf-8").splitlines()
    devices = _devices_path(requests).read_text(encoding="utf-8").splitlines()
    dates, tokens_sent, owners, numbers = [], [], [], []
    for number, line in enumerate(lines):
        _secret, body = line.split("\t", 1)
        for day in json.loads(body)["days"]:
            for token in day["tokens"]:
                dates.append(day["date"])
                tokens_sent.append(base64.urlsafe_b64decode(token + "=="))
                owners.append(devices[number])
                numbers.append(number)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT n FROM unnest(%s::date[], %s::bytea[], %s::uuid[], %s::int[]) "
            "AS u(date, token, device, n) "
            f'WHERE NOT EXISTS (SELECT 1 FROM "{VisitToken._meta.db_table}" v '
            "WHERE v.date = u.date AND v.token = u.token AND v.device_id = u.device)",
            [dates, tokens_sent, owners, numbers],
        )
        missing = sorted(row[0] for row in cursor.fetchall())
    tokens = 0
    with httpx.Client(base_url=base_url, timeout=60.0) as http:
        for index in missing:
            secret, body = lines[index].split("\t", 1)
            headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
            tokens += http.post("/api/v1/visits", content=body, headers=headers).raise_for_status().json()["accepted"]
    return len(missing), tokens


class BacklogWatch:
    """The upload backlog sampled at most every INTERVAL s: when was it first seen empty after a time."""

    INTERVAL = 0.25

    def __init__(self, stack):
        self.stack = stack
        self.samples: list[tuple[float, bool]] = []
        self.sampled = 0.0

    def __call__(self) -> None:
        if time.perf_counter() - self.sampled >= self.INTERVAL:
            self.seen(self.stack.backlog())

    def seen(self, backlog: dict) -> None:
        self.sampled = time.perf_counter()
        self.samples.append((self.sampled, any(backlog.values())))

    def first_empty_after(self, moment: float) -> float:
        """The first sample at or after ``moment`` that found nothing waiting (the drain ends on one)."""
        return next((at for at, busy in self.samples if at >= moment and not busy), self.sampled)


def wrk_get(port: int, path: str, *, connections: int, seconds: float) -> dict:
    command = [
        WRK, "-t", "1", "-c", str(connections), "-d", f"{seconds:.0f}s", "-s",
        str(PROJECT_DIR / "bench" / "wrk_get.lua"), f"http://127.0.0.1:{port}{path}",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    cpu = _wait_child(process)
    return {**json.loads(output.strip().splitlines()[-1]), "cpu_seconds": cpu}


def open_loop(port: int, requests: Path, *, rate_per_second: float) -> dict:
    command = [sys.executable, "-m", "bench.openloop", "--port", str(port), "--requests", str(requests),
               "--rate", str(rate_per_second)]  # fmt: skip
    process = subprocess.Popen(command, cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    cpu = _wait_child(process)
    if process.returncode != 0:
        raise RuntimeError(f"the open-loop sender failed: {output}")
    return {**json.loads(output.strip().splitlines()[-1]), "cpu_seconds": cpu}


# --- B3's probes, run beside the saturated load --------------------------------------------


def published_probe_case(codes: list, official) -> tuple[list[phones.Window], object]:
    """A published case: one window yesterday 10:00-11:00 at each probe venue."""
    from bench.b2_matching import backdate_codes, case_import
    from notifications.tasks import case_publish_and_match

    yesterday = ingest_dates()[0]
    venue_ids = [uuid.UUID(code.sub) for code in codes]
    backdate_codes(venue_ids, days=30)
    windows = phones.plan_case_visits(venue_ids, [yesterday], 2 * len(venue_ids))[::2]
    case = case_import(windows, reference=f"BENCH-B3-{uuid.uuid4().hex[:6]}", actor=official)
    case_publish_and_match(case=case, actor=official)
    return windows, case


class Probes:
    """Probe phones upload a visit during a published window; the time from their 202 (sent
    after the upload committed) to their notification being visible is recorded, with the
    largest backlog seen meanwhile. One thread uploads, one polls; both stop on ``finish``."""

    def __init__(self, stack, codes: list, windows: list, config: dict):
        self.stack = stack
        self.http = httpx.Client(base_url=stack.base_url, timeout=60.0)
        self.codes = {uuid.UUID(code.sub): code for code in codes}
        self.windows = windows
        self.config = config
        self.lock = threading.Lock()
        self.pending: dict[str, float] = {}
        self.latencies: list[float] = []
        self.visits: list[phones.PlantedVisit] = []
        self.device_ids: list[str] = []
        self.backlog_max: dict[str, int] = {}
        self.uploading = threading.Event()
        self.polling = threading.Event()
        self.threads = [threading.Thread(target=self._uploads, daemon=True),
                        threading.Thread(target=self._polls, daemon=True)]  # fmt: skip

    def start(self) -> None:
        self.uploading.set()
        self.polling.set()
        for thread in self.threads:
            thread.start()

    def stop_uploads(self) -> None:
        self.uploading.clear()
        self.threads[0].join()

    def finish(self, timeout: float) -> int:
        """Wait for the pending probes' notifications; stop polling; returns how many never came."""
        self.stop_uploads()
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        self.polling.clear()
        self.threads[1].join()
        self.http.close()
        return len(self.pending)

    def sample_backlog(self) -> None:
        backlog = self.stack.backlog()
        with self.lock:
            for key, value in backlog.items():
                self.backlog_max[key] = max(self.backlog_max.get(key, 0), value)

    def _one(self, index: int) -> None:
        (phone,) = load.phones_register(1, self.config)
        window = self.windows[index % len(self.windows)]
        t_in = window.start + 600
        phone.http = self.http
        phone.check_in(self.codes[window.venue_id], t_in, t_in + 1200)
        for attempt in range(3):  # a phone retries a connection reset (a web worker recycled)
            try:
                phone.upload()
                break
            except httpx.TransportError:
                if attempt == 2:
                    raise
        committed = time.perf_counter()
        with self.lock:
            self.pending[phone.device_id] = committed
            self.visits.append(phones.PlantedVisit(uuid.UUID(phone.device_id), window.venue_id, t_in, t_in + 1200))
            self.device_ids.append(phone.device_id)

    def _uploads(self) -> None:
        from django.db import connection

        index = 0
        try:
            while self.uploading.is_set():
                started = time.perf_counter()
                self._one(index)
                index += 1
                time.sleep(max(0.0, PROBE_EVERY_SECONDS - (time.perf_counter() - started)))
        finally:
            connection.close()

    def _polls(self) -> None:
        from django.db import connection

        from notifications.models import Notification

        try:
            while self.polling.is_set():
                with self.lock:
                    waiting = list(self.pending)
                if waiting:
                    seen = set(Notification.objects.filter(device_id__in=waiting).values_list("device_id", flat=True))
                    now = time.perf_counter()
                    with self.lock:
                        for device_id in seen:
                            self.latencies.append(now - self.pending.pop(str(device_id)))
                self.sample_backlog()
                time.sleep(POLL_SECONDS)
        finally:
            connection.close()


def probes_oracle_check(probes: Probes, windows: list, case) -> None:
    from notifications.models import Notification

    expected = phones.oracle(probes.visits, windows)
    key_of = {cv.id: next(w.case_visit_key for w in windows if w.venue_id == cv.venue_id) for cv in case.visits.all()}
    actual = {
        (uuid.UUID(str(device_id)), key_of[cv_id]): risk
        for device_id, cv_id, risk in Notification.objects.filter(device_id__in=probes.device_ids).values_list(
            "device_id", "case_visit_id", "risk"
        )
    }
    check(actual == expected, f"each probe has exactly the oracle's notification ({len(actual)} vs {len(expected)})")


# --- the run -----------------------------------------------------------------------------


class ServerCpu:
    """The metered process groups of the deployed stack, with PostgreSQL's and Redis's servers.

    The PostgreSQL and Redis servers are shared with the team's tests on this machine: the
    live backends of other databases are left out, and the server's idle CPU rate just before
    the run is reported so the rest of their noise can be judged."""

    def __init__(self, stack, extra_groups=None):
        self.postmaster = postmaster_pid()
        self.redis = redis_server_pid(load.DEFAULT_BROKER_URL)
        groups = {
            **(extra_groups or {}),
            "gunicorn (master and workers)": lambda: [stack.web.pid],
            "Celery worker (main process and pool)": lambda: [stack.worker.pid],
            "Celery beat": lambda: [stack.beat.pid],
            "PostgreSQL (postmaster, every backend, WAL writer, checkpointer)": lambda: [self.postmaster],
            "Redis (broker and cache)": lambda: [self.redis],
        }
        self.meter = CpuMeter(groups)
        self.others_before: dict[int, float] = {}

    def idle_rate(self, seconds: float = 3.0) -> float:
        """The PostgreSQL server's CPU (cores) over a few idle seconds: others' load on a shared box."""
        if not self.postmaster:
            return 0.0
        before = tree_cpu_seconds(self.postmaster)
        time.sleep(seconds)
        return (tree_cpu_seconds(self.postmaster) - before) / seconds

    def start(self) -> None:
        self.others_before = {pid: process_cpu_seconds(pid) for pid in other_database_backends()}
        self.meter.start()

    def stop(self) -> dict[str, float]:
        used = self.meter.stop()
        others = sum(
            process_cpu_seconds(pid) - before
            for pid, before in self.others_before.items()
            if pid in set(other_database_backends())
        )
        used["PostgreSQL (postmaster, every backend, WAL writer, checkpointer)"] -= max(0.0, others)
        return used


def run(options: Options) -> Report:
    from django.contrib.auth import get_user_model

    from notifications.models import Notification
    from notifications.partitions import visit_tokens_stored_estimate

    sizes = SIZES[options.scale]
    report = Report("B1 ingest, sustained: uploads through the deployed stack until matching caught up", options)
    b3 = Report("B3 late uploads at B1's saturated rate: upload → notification visible", options)
    dates = ingest_dates()
    loaded, load_seconds = datagen.background_ensure({dates[-1]: sizes["preload"]})
    label = f"b1-{int(time.time())}"
    codes = venue_pool(VENUES, label)
    probe_codes = venue_pool(PROBE_VENUES, f"{label}-probe")
    official, _ = get_user_model().objects.get_or_create(username="bench-official", defaults={"is_staff": True})
    windows, case = published_probe_case(probe_codes, official)
    stored_before = visit_tokens_stored_estimate()
    directory = Path(tempfile.mkdtemp(prefix="lh-bench-b1-"))

    with load.deployed_stack(options.database_url) as stack:
        config = load.phone_config(stack.base_url)
        registered = load.phones_register(sizes["phones"], config)
        with Stopwatch() as preparing:
            warm_sent = uploads_prepare(
                work_items(registered, codes, 2 * sizes["connections"], seed=1), directory / "warmup.tsv"
            )
            sent = uploads_prepare(
                work_items(registered, codes, sizes["uploads"], seed=sizes["uploads"]), directory / "uploads.tsv"
            )
            open_count = int(sizes["open_rate"] * sizes["open_seconds"])
            open_sent = uploads_prepare(work_items(registered, codes, open_count, seed=7), directory / "open.tsv")
        warmup = wrk_uploads(stack.port, directory / "warmup.tsv", connections=sizes["connections"])
        uploads_resend_missing(stack.base_url, directory / "warmup.tsv")
        check(load.drain_wait(stack, timeout=120), "the warm-up's matching drained")

        cpu = ServerCpu(stack)
        postgres_idle = cpu.idle_rate()
        probes = Probes(stack, probe_codes, windows, config)
        cpu.start()
        started = time.perf_counter()
        probes.start()
        busy = BacklogWatch(stack)
        saturated = wrk_uploads(stack.port, directory / "uploads.tsv", connections=sizes["connections"], on_tick=busy)
        probes.stop_uploads()
        drained = load.drain_wait(stack, timeout=DRAIN_TIMEOUT_SECONDS, on_sample=busy.seen)
        # Caught up: the first time the backlog was seen empty after the last upload was
        # answered (B3's probe phones go on uploading while wrk waits for answers it lost, so
        # a later busy sample is theirs, not the measured load's). The uploads wrk lost are
        # re-sent afterwards, as a phone retries, outside the clock and the CPU meter: the
        # figures count the uploads answered 202 within the clock.
        caught_up = busy.first_empty_after(saturated["answered_at"])
        used = cpu.stop()
        resent, _resent_tokens = uploads_resend_missing(stack.base_url, directory / "uploads.tsv")
        check(load.drain_wait(stack, timeout=DRAIN_TIMEOUT_SECONDS), "the re-sent uploads' matching drained")
        missed = probes.finish(timeout=120)
        check(drained, f"matching caught up within {DRAIN_TIMEOUT_SECONDS:.0f} s")

        web_meter = CpuMeter({"gunicorn": lambda: [stack.web.pid]})
        web_meter.start()
        bare = wrk_get(stack.port, "/bench/bare", connections=sizes["connections"], seconds=sizes["bare_seconds"])
        bare_web_cpu = web_meter.stop()["gunicorn"]

        opened = open_loop(stack.port, directory / "open.tsv", rate_per_second=sizes["open_rate"])
        check(load.drain_wait(stack, timeout=DRAIN_TIMEOUT_SECONDS), "the open-loop run's matching drained")
        memory = [
            [server.name, f"{server.peak_rss()[0]:.0f}", f"{server.peak_rss()[1]:.0f}", "≤ 300"]
            for server in stack.servers
        ]
    shutil.rmtree(directory, ignore_errors=True)  # the request files: tens of MB at full scale

    if saturated["failed"]:
        # Reported with every figure of the run, then the run fails (bench.run exits non-zero).
        options.context["deferred_failure"] = (
            f"{saturated['failed']} measured uploads refused, the first: {saturated['first_error']}"
        )
    check(opened["statuses"] == {"202": opened["requests"]}, f"every open-loop upload answered 202: {opened}")
    check(missed == 0 and probes.latencies, f"every probe notified ({missed} of {len(probes.device_ids)} missed)")
    probes_oracle_check(probes, windows, case)
    device_ids = [phone.device_id for phone in registered]
    stored = stored_distinct(device_ids)
    expected = warm_sent | sent | open_sent
    check(stored == expected, f"the phones' stored tokens equal those they sent ({len(stored)} vs {len(expected)})")
    check(not Notification.objects.filter(device_id__in=device_ids).exists(), "no ingest phone was notified")
    copy_rows, copy_rate = raw_copy_rate(max(100_000, min(saturated["tokens"], 2_000_000)))

    seconds = caught_up - started
    answered_seconds = saturated["answered_at"] - started
    uploads = saturated["accepted"]  # answered 202 within the clock (re-sends come after it)
    tokens = saturated["tokens"]
    tokens_per_second = rate(tokens, seconds)
    uploads_per_second = rate(uploads, seconds)
    bare_rate = rate(bare["requests"], bare["duration_us"] / 1e6)
    server_cpu = sum(used.values())
    per_upload = server_cpu * 1000 / max(1, uploads)
    options.context["b1_uploads_per_second"] = uploads_per_second
    worker_concurrency = os.environ.get("CELERY_CONCURRENCY", "4 (the Procfile's default)")

    report.table(
        "Sustained ingest, closed loop: wrk replaying pre-built uploads; the clock stops when matching has caught up",
        ["what", "measured", "local limit in the same run", "target"],
        [
            ["tokens/s sustained", fmt(tokens_per_second),
             f"raw COPY into the same partition {fmt(copy_rate)} rows/s ({fmt(copy_rows)} rows)", "≥ 16,000"],
            ["uploads/s sustained", f"{uploads_per_second:,.1f}",
             f"bare Django view through the same gunicorn {fmt(bare_rate)} req/s", ""],
            ["uploads, tokens, tokens per upload",
             f"{fmt(uploads)}, {fmt(tokens)}, {tokens / max(1, uploads):.1f}", "", ""],
            ["uploads refused (not 202); wrk socket errors; uploads re-sent as a phone would",
             f"{saturated['failed']}; {saturated['socket_errors']}; {resent}", "", "0 refused"],
            ["last 202 after, matching caught up after", f"{answered_seconds:.1f} s, {seconds:.1f} s", "", ""],
            ["uploads/s until the last 202 (answer rate alone)",
             f"{rate(saturated['accepted'], answered_seconds):,.1f}", "", ""],
            ["latency at saturation p50 / p99 / max (wrk)",
             f"{saturated['p50_us'] / 1000:.1f} / {saturated['p99_us'] / 1000:.1f} / "
             f"{saturated['max_us'] / 1000:.0f} ms",
             f"bare view p50 / p99 {bare['p50_us'] / 1000:.1f} / {bare['p99_us'] / 1000:.1f} ms", ""],
            ["wrk connections; gunicorn; Celery worker concurrency",
             f"{sizes['connections']}; deploy/gunicorn.conf.py defaults; {worker_concurrency}", "", ""],
            ["uploads built by the reference client before the clock",
             f"{fmt(uploads + open_count)} in {preparing.seconds:.1f} s", "", ""],
            ["visit tokens stored before the run", fmt(stored_before), "", ""],
        ],
    )  # fmt: skip
    rows = [
        [name, f"{value:.1f}", f"{value * 1000 / max(1, uploads):.2f}", f"{value / max(1e-9, server_cpu):.0%}"]
        for name, value in used.items()
    ]
    rows.append(["**total without the load generator**", f"{server_cpu:.1f}", f"**{per_upload:.2f}**", "100%"])
    rows.append([f"load generator: wrk, {sizes['connections']} connections, 1 thread",
                 f"{saturated['cpu_seconds']:.1f}", f"{saturated['cpu_seconds'] * 1000 / max(1, uploads):.2f}",
                 f"{saturated['cpu_seconds'] / seconds:.2f} cores"])  # fmt: skip
    report.table(
        "CPU per upload, every process (from wrk's start until matching caught up); target ≤ 5 ms without wrk",
        ["process tree", "CPU s", "ms per upload", "share"],
        rows,
    )
    tokens_per_upload = tokens / max(1, uploads)
    report.table(
        "What a rate would take at this CPU per upload (all processes but the load generator, no headroom)",
        ["tokens/s", "uploads/s", "cores"],
        [[fmt(target), f"{target / tokens_per_upload:,.0f}", f"{target / tokens_per_upload * per_upload / 1000:.1f}"]
         for target in (16_000, 25_000)],
    )  # fmt: skip
    report.table(
        "Open loop: uploads arriving at a fixed rate (latency from each upload's due time: no coordinated omission)",
        ["what", "measured", "target"],
        [
            ["arrival rate asked, achieved", f"{opened['rate_asked']:.0f}/s, {opened['rate_achieved']:.1f}/s", ""],
            ["latency p50 / p99 / max", f"{opened['p50_ms']:.1f} / {opened['p99_ms']:.1f} / {opened['max_ms']:.0f} ms",
             "p99 ≤ 100 ms at 300/s"],
            ["uploads, tokens", f"{fmt(opened['requests'])}, {fmt(opened['tokens'])}", ""],
["largest delay from due to sent (every connection busy, or the sender late); reconnects",
             f"{opened['schedule_lag_ms']:.1f} ms; {opened['reconnects']}", ""],
            ["sender CPU (bench/openloop.py, one process)",
             f"{opened['cpu_seconds']:.1f} s, {opened['cpu_seconds'] / max(1e-9, opened['seconds']):.2f} cores", ""],
        ],
    )  # fmt: skip
    report.table(
        "Local limits and noise",
        ["what", "value"],
        [
            ["bare Django view: req/s, gunicorn CPU per request",
             f"{fmt(bare_rate)}, {bare_web_cpu * 1000 / max(1, bare['requests']):.2f} ms "
             f"(wrk {bare['cpu_seconds']:.1f} s CPU)"],
            ["raw COPY of random tokens into today's partition", f"{fmt(copy_rate)} rows/s"],
            ["PostgreSQL server CPU while idle, 3 s before the run (others' databases)",
             f"{postgres_idle:.2f} cores: {postgres_idle * seconds:.1f} s of the run's PostgreSQL CPU may be theirs "
             "(not subtracted)"],
        ],
    )  # fmt: skip
    report.table("Peak RSS (MiB)", ["process", "largest child", "main", "target"], memory)
    if loaded:
        report.note(f"Generated {fmt(loaded)} tokens in today's partition inside PostgreSQL in {load_seconds:.1f} s.")
    if saturated["failed"]:
        report.note(
            f"**FAILED: {saturated['failed']} of {fmt(uploads)} measured uploads were refused** (re-sent, as a phone "
            f"retries, so every one is stored); the first: {saturated['first_error']} (see the web log)."
        )
    if warmup["failed"]:
        report.note(
            f"Warm-up (not measured): {warmup['failed']} of {warmup['uploads']} uploads refused, re-sent; the first: "
            f"{warmup['first_error']} (see the web log)."
        )
    report.note(
        f"Correctness: {fmt(uploads + warmup['uploads'] + opened['requests'])} uploads, each answered 202 or "
        "re-sent; the "
        f"{fmt(len(registered))} phones' distinct stored (date, token) equal the {fmt(len(expected))} they sent; "
        "none of them was notified."
    )

    latencies = sorted(probes.latencies)
    b3.table(
        "Probe uploads during B1's saturated run: 202 → notification visible (polled every 50 ms)",
        ["what", "p50 s", "p99 s", "max s", "probes", "target"],
        [["at B1 saturation", f"{percentile(latencies, 0.5):.2f}", f"{percentile(latencies, 0.99):.2f}",
          f"{latencies[-1]:.2f}", str(len(latencies)), "p99 ≤ 30 s"]],
    )  # fmt: skip
    b3.table(
        "Largest backlog seen during the saturated run (sampled every 50 ms)",
        ["what", "maximum"],
        [[key, fmt(value)] for key, value in probes.backlog_max.items()],
    )
    b3.note(
        f"Load: B1's saturated run, {uploads_per_second:,.1f} uploads/s sustained ({fmt(tokens_per_second)} tokens/s). "
        f"Correctness: all {len(probes.device_ids)} probes notified at high risk for their case visit, exactly as the "
        "oracle says, and nothing else."
    )
    options.context["b3_report"] = b3
    return report


def main(argv=None) -> None:
    options = parse_options("bench.b1_ingest", __doc__.splitlines()[0], argv=argv)
    django_setup(options)
    run(options).emit()
    options.context.pop("b3_report").emit()
    check("deferred_failure" not in options.context, options.context.get("deferred_failure", ""))


if __name__ == "__main__":
    main()
