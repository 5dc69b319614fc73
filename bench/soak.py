"""Soak: uploads at half of B1's sustained rate through nginx for half an hour, cases published meanwhile.

The deployed topology: nginx with deploy/nginx.conf (bench/nginx.py: only ports and paths
rewritten; TLS with a self-signed certificate) in front of deploy/Procfile's ``web``
(gunicorn with deploy/gunicorn.conf.py, its ``max_requests`` recycling included), ``worker``
and ``beat``, on the production settings, Redis as broker and cache, PostgreSQL.

Load: uploads from registered phones, each derived by the reference client (tests.phone)
from verified venue codes as in B1 and written to a file before the run, sent by
bench/openloop.py at a fixed arrival rate over HTTPS through nginx (latency from each
upload's due time: no coordinated omission), from many loopback addresses so nginx's
per-address limit applies as to real phones; beside them a second sender plays the phones
polling their notifications now and then. Every ``--publish-every`` minutes this process
publishes a case as an official does (``case_publish_later``: the worker publishes, then
matches): two one-hour windows yesterday at venues where phones that have already uploaded
were, so part of each case's notifications comes from publication matching and part from
the sweep of later uploads.

Measured: the RSS of every process at the start (after a warm-up) and at the end of the
load, by role (nginx master and workers; gunicorn master and each worker, with the recycles
counted; Celery's main process and pool; beat; Redis; this database's PostgreSQL backends,
without the shared buffers they map), sampled every interval in between; responses by
status class; the uploads' latency per interval; the CPU of every process tree.

Verdict: no 5xx and no request left unanswered; once matching has caught up (no date in the
upload backlog, no matching task queued or taken), the notifications of the soak's cases
equal an interval oracle (bench/phones.py) over the visits of every upload answered 202,
and no soak phone has any other; RSS growth of each role ≤ 10 % (of the sum for roles whose
processes are replaced as they run), and Redis holding no more keys that never expire (its
memory is the stack's expiring data), judged only when the measured span is at least
RSS_VERDICT_MINUTES long (``--scale small`` asserts correctness only and says so). The
rate achieved and the latency are reported, not judged. A failure exits non-zero after the figures are printed.
"""

import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import b1_ingest, load, phones
from bench.common import PROJECT_DIR, Options, Report, check, django_setup, fmt, parse_options
from bench.nginx import nginx_start
from bench.processes import descendants

B1_SUSTAINED_UPLOADS_PER_SECOND = 788.6  # docs/benchmarks.md, Results (full scale, quiet machine)
HALF_B1 = round(B1_SUSTAINED_UPLOADS_PER_SECOND / 2)
SIZES = {
    "small": {"minutes": 0.5, "rate": 50.0, "phones": 200, "venues": 100, "publish_every": 0.15, "warmup": 5.0,
              "interval": 5.0},
    "medium": {"minutes": 5.0, "rate": HALF_B1, "phones": 20_000, "venues": 1_000, "publish_every": 1.0,
               "warmup": 60.0, "interval": 30.0},
    "full": {"minutes": 30.0, "rate": HALF_B1, "phones": 100_000, "venues": 1_000, "publish_every": 3.0,
             "warmup": 60.0, "interval": 60.0},
}  # fmt: skip
RSS_VERDICT_MINUTES = 10.0
RSS_GROWTH_LIMIT = 0.10
# Their processes are replaced as they run (PostgreSQL backends reconnect after CONN_MAX_AGE),
# so the largest at the end is of another generation than at the start: the sum is judged.
ROLES_JUDGED_ON_SUM = {"PostgreSQL backends of this database"}
# Redis's memory is the data the stack keeps there, not its own: the rate-limit counters of
# every phone seen in the current window (an hour), each with its expiry, and the broker's
# queues. It grows as phones are first seen and falls as windows expire; what would be a
# leak is a key that never expires, so that is judged (Celery's queues and bindings come and
# go with the tasks: a few are allowed).
REDIS_ROLE = "Redis (broker and cache; a shared server)"
REDIS_PERSISTENT_KEYS_SLACK = 10
CASE_WINDOWS = 2
VISITS_PER_UPLOAD = 5
CONNECTIONS = 64  # each from its own loopback address, 127.0.0.2-65: ~6 uploads/s each, under nginx's 20 r/s
# A phone polls its notifications about every half hour (and on every push, which the soak
# does not send). Every ten minutes, 167 polls/s at full scale, costs this 2-core machine
# more than it has beside the uploads (docs/benchmarks.md, Results): a poll costs the web
# tier about four times an upload.
POLL_PERIOD_SECONDS = 1800
# Polls come from addresses of their own, 127.0.0.66-97 (~5 polls/s each at full scale):
# phones that upload and phones that poll at one moment are different phones.
POLL_CONNECTIONS = 32
POLL_FIRST_SOURCE = 2 + CONNECTIONS
SAMPLE_SECONDS = 2.0
CATCH_UP_TIMEOUT = 1800.0


def _add_arguments(parser) -> None:
    parser.add_argument("--minutes", type=float, default=None, help="length of the load (default by scale: 0.5/5/30)")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help=f"uploads per second (default {HALF_B1}, half of B1's {B1_SUSTAINED_UPLOADS_PER_SECOND}; 50 at small)",
    )
    parser.add_argument("--publish-every", type=float, default=None, help="minutes between publications (default 3)")


def _sizes(options: Options) -> dict:
    sizes = dict(SIZES[options.scale])
    for key in ("minutes", "rate", "publish_every"):
        value = getattr(options.extra, key, None)
        if value is not None:
            sizes[key] = value
    return sizes


# --- the uploads, built before the run -----------------------------------------------------


def uploads_write(registered, codes, count: int, path: Path, watched: set, seed: int) -> dict:
    """Write ``count`` uploads (secret, tab, body a line) from the phones in turn, five random
    visits each (today and yesterday), built by the reference client; returns, for each watched
    venue, its visits as (first line, last line of the upload, PlantedVisit)."""
    rng = random.Random(seed)
    dates = b1_ingest.ingest_dates()
    current: list[tuple] = []

    def work():
        for index in range(count):
            visits = load.random_visits(codes, rng, visits=VISITS_PER_UPLOAD, days=dates)
            item = (registered[index % len(registered)], visits)
            current[:] = [item]  # uploads_built yields each item's upload before it takes the next
            yield item

    kept: dict[uuid.UUID, list] = {venue: [] for venue in watched}
    line = 0
    with path.open("w", encoding="utf-8") as lines:
        for phone, bodies in b1_ingest.uploads_built(work()):
            first = line
            for body in bodies:
                lines.write(f"{phone.secret}\t{body}\n")
                line += 1
            device = uuid.UUID(phone.device_id)
            for code, t_in, t_out in current[0][1]:
                venue = uuid.UUID(code.sub)
                if venue in kept:
                    kept[venue].append((first, line - 1, phones.PlantedVisit(device, venue, t_in, t_out)))
    return kept


def polls_write(registered, count: int, path: Path, seed: int) -> None:
    """``count`` notification polls, each by one phone (its secret a line), the phones shuffled in turn."""
    rng = random.Random(seed)
    secrets = [phone.secret for phone in registered]
    with path.open("w", encoding="utf-8") as lines:
        for index in range(count):
            if index % len(secrets) == 0:
                rng.shuffle(secrets)
            lines.write(secrets[index % len(secrets)] + "\n")


# --- cases, published as an official does ----------------------------------------------------


def windows_plan(kept: dict, case_venues: list, publications: list[float], rate: float) -> list[list[phones.Window]]:
    """For each publication, CASE_WINDOWS one-hour windows yesterday, each at its own venue,
    starting at the quarter hour of a visit of an upload sent well before the publication
    (so its phones are told by publication matching, and later uploads by the sweep)."""
    yesterday = b1_ingest.ingest_dates()[0]
    plan, key = [], 0
    rng = random.Random(len(publications))
    for number, seconds in enumerate(publications):
        sent_by = int(rate * seconds * 0.8)
        windows = []
        for venue in case_venues[number * CASE_WINDOWS : (number + 1) * CASE_WINDOWS]:
            earlier = [
                visit
                for _first, last, visit in kept[venue]
                if last < sent_by and dt.datetime.fromtimestamp(visit.t_in, phones.HONG_KONG).date() == yesterday
            ]
            start = rng.choice(earlier).t_in // phones.SLOT * phones.SLOT if earlier else None
            if start is None or start + 3600 > phones.local_timestamp(yesterday + dt.timedelta(days=1), 0):
                start = phones.local_timestamp(yesterday, 12)  # no such visit (a tiny run): noon, still valid
            windows.append(phones.Window(case_visit_key=key, venue_id=venue, start=start, end=start + 3600))
            key += 1
        plan.append(windows)
    return plan


def case_publish_as_official(windows: list, reference: str, official, queue: str):
    """A draft case with the windows (the officials' CSV path), published as the admin action does:
    checked here, queued on commit, published and matched by the worker."""
    from django.db import transaction

    from bench.b2_matching import case_import
    from notifications.tasks import case_publish_later

    case = case_import(windows, reference=reference, actor=official)
    with load.tasks_to_broker(queue), transaction.atomic():
        case_publish_later(case=case, actor=official)
    return case


def cases_published_wait(cases: list, timeout: float) -> list[str]:
    """Until the worker has published every case; returns the references it did not."""
    from notifications.models import Case

    deadline = time.monotonic() + timeout
    ids = [case.pk for case in cases]
    while True:
        waiting = list(
            Case.objects.filter(pk__in=ids).exclude(status=Case.Status.PUBLISHED).values_list("reference", "status")
        )
        if not waiting or time.monotonic() > deadline:
            return [f"{reference} ({status})" for reference, status in waiting]
        time.sleep(0.2)


def notifications_compare(cases: list, windows: list, visits: list, device_ids: list[str]) -> tuple[dict, dict, int]:
    """(expected by the oracle, present) as {(device, case visit key): risk}, and how many
    notifications the soak phones have of any other case."""
    from notifications.models import CaseVisit, Notification

    key_of = {(w.venue_id, w.start): w.case_visit_key for w in windows}
    visit_key = {
        cv_id: key_of[(venue_id, int(start.timestamp()))]
        for cv_id, venue_id, start in CaseVisit.objects.filter(case__in=cases).values_list("id", "venue_id", "start")
    }
    present = {
        (device_id, visit_key[cv_id]): risk
        for device_id, cv_id, risk in Notification.objects.filter(case_visit__case__in=cases).values_list(
            "device_id", "case_visit_id", "risk"
        )
    }
    strays = Notification.objects.filter(device_id__in=device_ids).exclude(case_visit__case__in=cases).count()
    return phones.oracle(visits, windows), present, strays


# --- memory, by role ---------------------------------------------------------------------------


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, RssShmem) of one process in MiB; (0, 0) if it is gone."""
    values = {"VmRSS:": 0, "RssShmem:": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name = line.split(None, 1)[0] if line else ""
            if name in values:
                values[name] = int(line.split()[1])
    except OSError:
        pass
    return values["VmRSS:"] / 1024, values["RssShmem:"] / 1024


def buffer_blocks() -> tuple[int, int]:
    """(blocks this database read from outside shared buffers, blocks it found in them), so far."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT blks_read, blks_hit FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()


def visit_token_partitions() -> list[tuple[str, int, int, int]]:
    """Visit-token partitions with rows: (name, rows by the planner's estimate or -1, table bytes, index bytes)."""
    from django.db import connection

    from notifications.models import VisitToken

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples::bigint, pg_relation_size(c.oid), pg_indexes_size(c.oid) "
            "FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass AND pg_relation_size(c.oid) > 0 ORDER BY c.relname",
            [VisitToken._meta.db_table],
        )
        return cursor.fetchall()


def shared_buffers() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW shared_buffers")
        return cursor.fetchone()[0]


def database_backends() -> list[int]:
    """The client backends connected to this database, this process's own left out."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


class Roles:
    """The processes of each role now; a snapshot is {role: {pid: (RSS, RSS without shared memory)}}.

    Shared memory (PostgreSQL's shared buffers, nginx's zones) is counted in every process
    that has touched it, and a backend's share grows as it touches more of the buffers: that
    is the cache filling, not a leak, so growth is judged on RSS without it (for the Python
    processes the two are the same)."""

    def __init__(self, stack, front, redis_pid):
        self.stack, self.front, self.redis_pid = stack, front, redis_pid

    def pids(self) -> dict[str, list[int]]:
        stack, front = self.stack, self.front
        return {
            "nginx master": [front.pid],
            "nginx workers": descendants(front.pid)[1:],
            "gunicorn master": [stack.web.pid],
            "gunicorn workers": descendants(stack.web.pid)[1:],
            "Celery worker, main process": [stack.worker.pid],
            "Celery worker, pool": descendants(stack.worker.pid)[1:],
            "Celery beat": descendants(stack.beat.pid),
            "Redis (broker and cache; a shared server)": [self.redis_pid] if self.redis_pid else [],
            "PostgreSQL backends of this database": database_backends(),
        }

    def snapshot(self) -> dict[str, dict[int, tuple[float, float]]]:
        taken = {}
        for role, pids in self.pids().items():
            readings = {pid: memory_mib(pid) for pid in pids}
            taken[role] = {pid: (rss, rss - shared) for pid, (rss, shared) in readings.items() if rss}
        return taken


class Sampler:
    """What happens between the snapshots: processes that came (gunicorn workers recycled,
    pool children replaced), the largest RSS each role's processes reached, and each role's
    total every interval."""

    def __init__(self, roles: Roles, interval: float):
        self.roles, self.interval = roles, interval
        self.seen: dict[str, set[int]] = {}
        self.first: dict[str, set[int]] = {}
        self.largest: dict[str, float] = {}
        self.trend: list[tuple[float, dict[str, float]]] = []
        self.next_trend = 0.0
        self.sampled = 0.0

    def __call__(self, elapsed: float) -> None:
        if time.monotonic() - self.sampled < SAMPLE_SECONDS:
            return
        self.sampled = time.monotonic()
        snapshot = self.roles.snapshot()
        for role, readings in snapshot.items():
            self.first.setdefault(role, set(readings))
            self.seen.setdefault(role, set()).update(readings)
            self.largest[role] = max([self.largest.get(role, 0.0), *(private for _, private in readings.values())])
        if elapsed >= self.next_trend:
            totals = {role: sum(private for _, private in readings.values()) for role, readings in snapshot.items()}
            self.trend.append((elapsed, totals))
            self.next_trend += self.interval

    def came(self, role: str) -> int:
        """Processes of ``role`` that started after the first sample (a recycled worker's successor)."""
        return len(self.seen.get(role, set()) - self.first.get(role, set()))


def redis_keys(urls: list[str]) -> dict[str, tuple[int, int, float]]:
    """For each Redis database of ``urls``: (keys, keys that never expire, the server's used memory in MiB)."""
    import redis

    counted = {}
    for url in urls:
        client = redis.Redis.from_url(url)
        try:
            number = client.connection_pool.connection_kwargs.get("db", 0)
            keyspace = client.info("keyspace").get(f"db{number}", {"keys": 0, "expires": 0})
            used = client.info("memory")["used_memory"] / 2**20
        finally:
            client.close()
        counted[url] = (keyspace["keys"], keyspace["keys"] - keyspace["expires"], used)
    return counted


# --- the senders -------------------------------------------------------------------------------


class Sender:
    """bench/openloop.py as a child; its JSON goes to a file (it can be long) and its CPU comes
    from the kernel when it is reaped."""

    def __init__(self, port: int, requests: Path, rate: float, *, connections: int, first_source: int = 2,
                 get: str | None = None, bucket_seconds: float = 0.0):  # fmt: skip
        self.output = requests.with_suffix(".json")
        command = [sys.executable, "-m", "bench.openloop", "--port", str(port), "--requests", str(requests),
                   "--rate", str(rate), "--connections", str(connections), "--tls", "--sources", str(connections),
                   "--first-source", str(first_source), "--bucket-seconds", str(bucket_seconds)]  # fmt: skip
        if get:
            command += ["--get", get]
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(command, cwd=PROJECT_DIR, stdout=output)
        self.cpu_seconds: float | None = None
        self.result: dict | None = None

    def done(self) -> bool:
        """Reap the sender if it has exited (os.wait4 keeps its rusage, which Popen.poll would lose)."""
        if self.cpu_seconds is not None:
            return True
        pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        if self.process.returncode != 0:
            raise RuntimeError(f"the open-loop sender failed: {self.output.read_text()[-2000:]}")
        self.result = json.loads(self.output.read_text().strip().splitlines()[-1])
        return True

    def stop(self) -> None:
        if self.cpu_seconds is None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def status_classes(statuses: dict[str, int]) -> dict[str, int]:
    classes = {"2xx": 0, "3xx": 0, "429": 0, "other 4xx": 0, "5xx": 0, "no answer": 0}
    for code, count in statuses.items():
        status = int(code)
        if status == 0:
            classes["no answer"] += count
        elif status == 429:
            classes["429"] += count
        elif 400 <= status < 500:
            classes["other 4xx"] += count
        else:
            classes[f"{status // 100}xx"] += count
    return classes


def by_status(statuses: dict[str, int]) -> str:
    """The answers other than 2xx, by status ("0": none), e.g. "429: 12, 503: 1"; "none"."""
    others = sorted((int(code), count) for code, count in statuses.items() if not 200 <= int(code) < 300)
    return ", ".join(f"{code}: {fmt(count)}" for code, count in others) or "none"


# --- the run -----------------------------------------------------------------------------------


def _growth(before: float, after: float) -> float:
    return (after - before) / before if before > 0 else 0.0


def rss_rows(start: dict, end: dict, sampler: Sampler, judged: bool) -> tuple[list[list[str]], list[str]]:
    """One row per role (sum and largest process, start → end) and the roles that grew too much."""
    rows, grown = [], []
    for role in start:
        before, after = start[role], end.get(role, {})
        total_before = sum(private for _, private in before.values())
        total_after = sum(private for _, private in after.values())
        largest_before = max((private for _, private in before.values()), default=0.0)
        largest_after = max((private for _, private in after.values()), default=0.0)
        shared_after = sum(rss - private for rss, private in after.values())
        growth = _growth(total_before, total_after)
        if role not in ROLES_JUDGED_ON_SUM:
            growth = max(growth, _growth(largest_before, largest_after))
        verdict = "not judged"
        if role == REDIS_ROLE:
            verdict = "keys judged (below)"
        elif judged:
            verdict = "ok" if growth <= RSS_GROWTH_LIMIT else "**grew**"
            if growth > RSS_GROWTH_LIMIT:
                grown.append(f"{role} {growth:+.0%}")
        rows.append([
            role, f"{len(before)} → {len(after)}", f"{total_before:.0f} → {total_after:.0f}",
            f"{_growth(total_before, total_after):+.1%}", f"{largest_before:.0f} → {largest_after:.0f}",
            f"{_growth(largest_before, largest_after):+.1%}", f"{sampler.largest.get(role, 0.0):.0f}",
            f"{shared_after:.0f}", verdict,
        ])  # fmt: skip
    return rows, grown


def run(options: Options) -> Report:
    from django.contrib.auth import get_user_model

    from bench.b2_matching import backdate_codes
    from bench.processes import redis_server_pid

    sizes = _sizes(options)
    seconds = sizes["minutes"] * 60
    rate = sizes["rate"]
    report = Report(
        f"Soak: {sizes['minutes']:g} minutes at {rate:g} uploads/s through nginx, a case every "
        f"{sizes['publish_every']:g} minutes",
        options,
    )
    label = f"soak-{int(time.time())}"
    codes = b1_ingest.venue_pool(sizes["venues"], label)
    backdate_codes([uuid.UUID(code.sub) for code in codes], days=30)  # posters up before yesterday's windows
    official, _ = get_user_model().objects.get_or_create(username="bench-official", defaults={"is_staff": True})
    publish_every = sizes["publish_every"] * 60
    publications = [publish_every * number for number in range(1, int(seconds / publish_every) + 1)]
    publications = [moment for moment in publications if moment < seconds] or [seconds / 2]
    rng = random.Random(label)
    case_venues = rng.sample([uuid.UUID(code.sub) for code in codes], CASE_WINDOWS * len(publications))
    directory = Path(tempfile.mkdtemp(prefix="lh-bench-soak-"))
    uploads_path, polls_path = directory / "uploads.tsv", directory / "polls.txt"
    poll_rate = max(1.0, sizes["phones"] / POLL_PERIOD_SECONDS)
    failures: list[str] = []

    with load.deployed_stack(options.database_url, settings_module="leavehome.settings", PROXY_COUNT="1") as stack:
        front = nginx_start(stack.port)
        senders: list[Sender] = []
        try:
            config = load.phone_config(stack.base_url)
            registered = load.phones_register(sizes["phones"], config)
            prepare_started = time.monotonic()
            kept = uploads_write(registered, codes, int(rate * seconds), uploads_path, set(case_venues), seed=1)
            polls_write(registered, int(poll_rate * seconds), polls_path, seed=2)
            prepare_seconds = time.monotonic() - prepare_started
            plan = windows_plan(kept, case_venues, publications, rate)
            windows = [window for windows_ in plan for window in windows_]

            roles = Roles(stack, front, redis_server_pid(load.DEFAULT_BROKER_URL))
            redis_urls = [load.DEFAULT_BROKER_URL, load.CACHE_URL]
            sampler = Sampler(roles, sizes["interval"])
            cpu = b1_ingest.ServerCpu(stack, extra_groups={"nginx (master and workers)": lambda: [front.pid]})
            started = time.monotonic()
            senders = [
                Sender(front.https_port, uploads_path, rate, connections=CONNECTIONS,
                       bucket_seconds=sizes["interval"]),
                Sender(front.https_port, polls_path, poll_rate, connections=POLL_CONNECTIONS,
                       first_source=POLL_FIRST_SOURCE, get="/api/v1/notifications"),
            ]  # fmt: skip
            cases, start_rss, start_keys, start_blocks, start_at = [], None, None, None, 0.0
            while not all(sender.done() for sender in senders):
                elapsed = time.monotonic() - started
                sampler(elapsed)
                if start_rss is None and elapsed >= sizes["warmup"]:
                    start_rss, start_at = roles.snapshot(), elapsed
                    start_keys, start_blocks = redis_keys(redis_urls), buffer_blocks()
                    cpu.start()
                if len(cases) < len(plan) and elapsed >= publications[len(cases)] + 0.5:
                    number = len(cases)
                    cases.append(case_publish_as_official(plan[number], f"{label}-{number + 1}".upper(), official,
                                                          stack.queue))  # fmt: skip
                time.sleep(0.2)
            load_seconds = time.monotonic() - started
            end_rss, end_keys, end_blocks = roles.snapshot(), redis_keys(redis_urls), buffer_blocks()
            sampler.sampled = 0.0
            sampler(load_seconds)
            if start_rss is None:  # a load shorter than the warm-up
                start_rss, start_keys, start_blocks, start_at = end_rss, end_keys, end_blocks, load_seconds
                cpu.start()
            used = cpu.stop()
            for number in range(len(cases), len(plan)):  # a publication due in the load's last moments
                cases.append(case_publish_as_official(plan[number], f"{label}-{number + 1}".upper(), official,
                                                      stack.queue))  # fmt: skip
            catch_up_started = time.monotonic()
            unpublished = cases_published_wait(cases, timeout=300)
            drained = load.drain_wait(stack, timeout=CATCH_UP_TIMEOUT)
            catch_up = time.monotonic() - catch_up_started
            nginx_errors = front.error_lines()
            partitions = visit_token_partitions()
        finally:
            for sender in senders:
                sender.stop()
            front.stop()
    uploads, polls = senders[0].result, senders[1].result
    shutil.rmtree(directory, ignore_errors=True)

    if unpublished:
        failures.append(f"cases not published: {', '.join(unpublished)}")
    if not drained:
        failures.append(f"matching did not catch up within {CATCH_UP_TIMEOUT:.0f} s")
    upload_classes, poll_classes = status_classes(uploads["statuses"]), status_classes(polls["statuses"])
    for name, classes in (("uploads", upload_classes), ("polls", poll_classes)):
        if classes["5xx"] or classes["no answer"]:
            failures.append(f"{name}: {classes['5xx']} answered 5xx, {classes['no answer']} never answered")
    refused = set(uploads["failed_indices"])
    visits = [
        visit
        for items in kept.values()
        for first, last, visit in items
        if not any(line in refused for line in range(first, last + 1))
    ]
    device_ids = [phone.device_id for phone in registered]
    expected, present, strays = notifications_compare(cases, windows, visits, device_ids)
    missing = {key: risk for key, risk in expected.items() if present.get(key) != risk}
    unexpected = {key: risk for key, risk in present.items() if expected.get(key) != risk}
    if missing or unexpected or strays:
        failures.append(
            f"notifications: {len(missing)} expected missing or at another risk, {len(unexpected)} unexpected, "
            f"{strays} of other cases to soak phones"
        )
    if not expected:
        failures.append("the oracle expects no notification: the cases missed every phone")

    measured_minutes = (load_seconds - start_at) / 60
    judged = measured_minutes >= RSS_VERDICT_MINUTES
    memory, grown = rss_rows(start_rss, end_rss, sampler, judged)
    if grown:
        failures.append(f"RSS grew more than {RSS_GROWTH_LIMIT:.0%}: {'; '.join(grown)}")
    persistent_added = sum(end_keys[url][1] - start_keys[url][1] for url in redis_urls)
    if judged and persistent_added > REDIS_PERSISTENT_KEYS_SLACK:
        failures.append(f"Redis: {persistent_added} more keys that never expire")

    span = max(1e-9, load_seconds - start_at)
    blocks_total = (end_blocks[0] - start_blocks[0]) + (end_blocks[1] - start_blocks[1])
    blocks_missed = (end_blocks[0] - start_blocks[0]) / max(1, blocks_total)
    risks = list(expected.values())
    report.table(
        "The soak: open-loop uploads over HTTPS through nginx (latency from each upload's due time)",
        ["what", "measured", "required"],
        [
            ["load; measured span (after the warm-up)",
             f"{load_seconds / 60:.1f} min; {measured_minutes:.1f} min from {start_at:.0f} s", ""],
            ["upload rate asked, achieved", f"{rate:g}/s ({rate / B1_SUSTAINED_UPLOADS_PER_SECOND:.0%} of B1's "
             f"{B1_SUSTAINED_UPLOADS_PER_SECOND}), {uploads['rate_achieved']:.1f}/s", ""],
            ["uploads, tokens accepted", f"{fmt(uploads['requests'])}, {fmt(uploads['tokens'])}", ""],
            ["uploads by status: 2xx / 3xx / 429 / other 4xx / 5xx / no answer",
             " / ".join(fmt(value) for value in upload_classes.values()), "0 5xx, 0 unanswered"],
            ["notification polls (GET) by status, same classes; rate",
             " / ".join(fmt(value) for value in poll_classes.values()) + f"; {poll_rate:.1f}/s", "0 5xx, 0 unanswered"],
            ["upload latency p50 / p99 / p99.9 / max",
             f"{uploads['p50_ms']:.1f} / {uploads['p99_ms']:.1f} / {uploads['p999_ms']:.1f} / "
             f"{uploads['max_ms']:.0f} ms", ""],
            ["poll latency p50 / p99 / max",
             f"{polls['p50_ms']:.1f} / {polls['p99_ms']:.1f} / {polls['max_ms']:.0f} ms", ""],
            ["uploads, polls not answered 2xx, by status",
             f"{by_status(uploads['statuses'])}; {by_status(polls['statuses'])}", ""],
            ["lines in nginx's error log of the site (upstream failures; its 429s are logged below its level)",
             fmt(len(nginx_errors)), ""],
            ["PostgreSQL's shared buffers; of the blocks read over the measured span, the share not in them",
             f"{shared_buffers()}; {blocks_missed:.1%} of {fmt(blocks_total)}", ""],
            ["largest delay from due to sent; reconnects (nginx closing kept connections)",
             f"{uploads['schedule_lag_ms']:.0f} ms; {uploads['reconnects']}", ""],
            ["cases published (each 2 one-hour windows yesterday), every",
             f"{len(cases)}, {sizes['publish_every']:g} min", ""],
            ["notifications expected by the oracle (high / low); present as expected",
             f"{fmt(len(expected))} ({risks.count('high')} / {risks.count('low')}); "
             f"{fmt(len(expected) - len(missing))}", "all, nothing else"],
            ["matching caught up after the load ended", f"{catch_up:.1f} s", ""],
            ["gunicorn workers started after the first (max_requests recycling); Celery pool children",
             f"{sampler.came('gunicorn workers')}; {sampler.came('Celery worker, pool')}", ""],
            ["uploads built by the reference client before the run; phones",
             f"{fmt(uploads['requests'])} in {prepare_seconds:.1f} s; {fmt(sizes['phones'])}", ""],
        ],
    )  # fmt: skip
    if nginx_errors:
        report.block("The last lines of nginx's error log of the site", "\n".join(nginx_errors[-10:]))
    report.table(
        f"RSS by role (MiB, without shared memory), at the start of the measured span and at the end of the load; "
        f"growth of the sum and of the largest process (of the sum only for {', '.join(sorted(ROLES_JUDGED_ON_SUM))}),"
        f" limit {RSS_GROWTH_LIMIT:.0%}",
        ["role", "processes", "sum", "growth", "largest process", "growth", "largest seen", "shared (end)",
         "verdict"],
        memory,
    )  # fmt: skip
    report.table(
        "Redis, at the start of the measured span and at the end of the load: keys, keys that never expire, "
        f"the server's used memory; judged: at most {REDIS_PERSISTENT_KEYS_SLACK} more keys that never expire",
        ["database", "keys", "never expire", "used memory (MiB)"],
        [
            [f"{url.rsplit('/', 1)[-1]} ({'broker' if url == load.DEFAULT_BROKER_URL else 'cache'})",
             f"{fmt(start_keys[url][0])} → {fmt(end_keys[url][0])}", f"{start_keys[url][1]} → {end_keys[url][1]}",
             f"{start_keys[url][2]:.0f} → {end_keys[url][2]:.0f}"]
            for url in redis_urls
        ],
    )  # fmt: skip
    report.table(
        "The visit-token partitions after the load (each upload adds to two indexes at random places: "
        "they are what the shared buffers must hold)",
        ["partition", "rows (planner's estimate)", "table MiB", "indexes MiB"],
        [
            [name, fmt(rows) if rows >= 0 else "not analysed yet", f"{table / 2**20:,.0f}", f"{index / 2**20:,.0f}"]
            for name, rows, table, index in partitions
        ],
    )
    trend_roles = list(start_rss)
    report.table(
        "RSS of each role every interval (MiB, without shared memory; sums)",
        ["at", *trend_roles],
        [[f"{at:.0f} s", *(f"{totals.get(role, 0.0):.0f}" for role in trend_roles)] for at, totals in sampler.trend],
    )
    report.table(
        "Upload latency per interval of due time",
        ["from", "uploads", "p50 ms", "p99 ms", "max ms", "not 202"],
        [
            [f"{bucket['bucket'] * sizes['interval']:.0f} s", fmt(bucket["requests"]), f"{bucket['p50_ms']:.1f}",
             f"{bucket['p99_ms']:.1f}", f"{bucket['max_ms']:.0f}",
             fmt(bucket["requests"] - bucket["statuses"].get("202", 0))]
            for bucket in uploads.get("buckets", [])
        ],
    )  # fmt: skip
    cpu_rows = [[name, f"{value:.1f}", f"{value / span:.2f}"] for name, value in used.items()]
    cpu_rows.append(["senders (bench/openloop.py: uploads, polls; the whole load)",
                     f"{senders[0].cpu_seconds + senders[1].cpu_seconds:.1f}",
                     f"{(senders[0].cpu_seconds + senders[1].cpu_seconds) / max(1e-9, load_seconds):.2f}"])  # fmt: skip
    report.table("CPU over the measured span, every process tree", ["process tree", "CPU s", "cores"], cpu_rows)
    if not judged:
        report.note(
            f"RSS growth not judged: the measured span ({measured_minutes:.1f} min) is shorter than "
            f"{RSS_VERDICT_MINUTES:g} minutes, too short for growth to mean anything; this run checks correctness only."
        )
    report.note(
        "gunicorn recycles each worker after max_requests (deploy/gunicorn.conf.py: 10,000 + up to 1,000 jitter), "
        "so its workers' RSS is bounded by recycling: the sum and the largest at the end are of workers of various "
        "ages; 'largest seen' is the most any worker of the role reached, sampled every "
        f"{SAMPLE_SECONDS:g} s. With preload_app the workers are forked from a master that has imported "
        "Django: the pages they still share with it are counted in each worker's RSS, so the sums overstate "
        "what the machine holds."
    )
    report.note(
        f"Correctness: {fmt(len(expected))} notifications of {len(cases)} cases, from publication matching and "
        "the sweep of later uploads, checked against the interval oracle over every upload answered 202"
        + ("; all present, nothing else." if not (missing or unexpected or strays) else "; **they differ**.")
    )
    if failures:
        report.note("**FAILED**: " + "; ".join(failures))
        options.context["deferred_failure"] = "; ".join(failures)
    return report


def main(argv=None) -> None:
    options = parse_options("bench.soak", __doc__.splitlines()[0], _add_arguments, argv=argv)
    django_setup(options)
    run(options).emit()
    check("deferred_failure" not in options.context, options.context.get("deferred_failure", ""))


if __name__ == "__main__":
    main()
