"""The web path under load: gunicorn and a Celery worker on Redis, and phones played by the
reference client (tests.phone) uploading visits over HTTP on 127.0.0.1.

Phones are registered through the device service beforehand (registration is not what is
measured); every upload then goes through the real protocol: the phone derives its tokens
from verified venue codes and POSTs them to /api/v1/visits. The load generator runs in this
process with one thread and one keep-alive connection per concurrent phone; its own CPU time
is reported, since on two cores it competes with the server it measures.
"""

import datetime as dt
import random
import resource
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from bench.common import DEFAULT_BROKER_URL, bench_environment, percentile
from bench.processes import celery_worker_start, gunicorn_start

CACHE_URL = "redis://127.0.0.1:6379/13"


@dataclass
class Stack:
    port: int
    queue: str
    broker_url: str
    web: object
    workers: list

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sample_rss(self) -> None:
        for server in [self.web, *self.workers]:
            server.sample_rss()

    def backlog(self) -> int:
        """Tasks waiting in the queue (a Redis list named after it)."""
        import redis

        client = redis.Redis.from_url(self.broker_url)
        try:
            return client.llen(self.queue)
        finally:
            client.close()


@contextmanager
def server_stack(database_url: str, *, web_workers: int, worker_processes: int = 1, concurrency: int = 1):
    """gunicorn (sync workers) and Celery worker processes on one fresh queue, stopped on exit."""
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    environment = bench_environment(
        database_url,
        CELERY_BROKER_URL=DEFAULT_BROKER_URL,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        CACHE_URL=CACHE_URL,
    )
    web, port = gunicorn_start(environment, workers=web_workers)
    workers = []
    try:
        for index in range(worker_processes):
            workers.append(celery_worker_start(environment, queue=queue, concurrency=concurrency, name=f"bench{index}"))
        yield Stack(port=port, queue=queue, broker_url=DEFAULT_BROKER_URL, web=web, workers=workers)
    finally:
        for server in [*workers, web]:
            server.sample_rss()
            server.stop()


def drain(stack: Stack, timeout: float = 600.0) -> float:
    """Wait until the queue is empty; returns the seconds it took."""
    started = time.monotonic()
    while stack.backlog() and time.monotonic() - started < timeout:
        stack.sample_rss()
        time.sleep(0.2)
    return time.monotonic() - started


# --- phones ------------------------------------------------------------------------------


def phone_config(base_url: str) -> dict:
    with httpx.Client(base_url=base_url) as http:
        return http.get("/api/v1/config").raise_for_status().json()


def phones_register(count: int, config: dict) -> list:
    """``count`` reference-client phones, registered through the device service."""
    from notifications.devices import device_register
    from tests.phone import Phone

    phones = []
    for _ in range(count):
        device, secret = device_register()
        phone = Phone(http=None)
        phone.config, phone.device_id, phone.secret = config, str(device.pk), secret
        phones.append(phone)
    return phones


def random_visits(codes: list, rng: random.Random, *, visits: int, days: list[dt.date]) -> list[tuple]:
    """A day's worth of check-ins: ``visits`` visits of 30-150 minutes between 07:00 and 22:00."""
    from bench.phones import local_timestamp

    now = int(time.time())
    planned = []
    for _ in range(visits):
        day = rng.choice(days)
        t_in = local_timestamp(day, 7) + rng.randrange(0, 15 * 3600)
        t_out = t_in + rng.randrange(1800, 9000)
        if t_out > now:  # nobody uploads a visit still to come
            t_in, t_out = now - 7200, now - 600
        planned.append((rng.choice(codes), t_in, t_out))
    return planned


@dataclass
class LoadResult:
    requests: int = 0
    tokens: int = 0
    errors: list = field(default_factory=list)
    latencies: list = field(default_factory=list)
    seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    lag_seconds: float = 0.0

    def p(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) * 1000


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _threads_run(threads: list, result: LoadResult, started: float, cpu_started: float) -> LoadResult:
    """Start the load threads, wait for all, and stamp the run's wall and client CPU time."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    result.client_cpu_seconds = _cpu_seconds() - cpu_started
    return result


def uploads_run(
    base_url: str,
    work: list[tuple],
    *,
    concurrency: int,
    rate: float | None = None,
    stop: threading.Event | None = None,
    on_sample=None,
) -> LoadResult:
    """Upload ``work`` (``(phone, visits)`` items) with ``concurrency`` threads.

    Closed loop (as fast as the server answers) when ``rate`` is None, else paced at ``rate``
    uploads per second overall (an open-loop schedule: a late thread sends at once and the
    lag is recorded). ``stop`` ends the run early.
    """  # fmt: skip
    result = LoadResult()
    lock = threading.Lock()
    items = iter(work)
    interval = concurrency / rate if rate else 0.0
    started = time.perf_counter()
    cpu_started = _cpu_seconds()

    def worker(index: int) -> None:
        http = httpx.Client(base_url=base_url, timeout=60.0)
        next_at = started + index * interval / max(1, concurrency)
        try:
            while stop is None or not stop.is_set():
                with lock:
                    item = next(items, None)
                if item is None:
                    return
                phone, visits = item
                if interval:
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    else:
                        with lock:
                            result.lag_seconds = max(result.lag_seconds, -delay)
                    next_at += interval
                phone.http = http
                phone.visits = []
                for code, t_in, t_out in visits:
                    phone.check_in(code, t_in, t_out)
                sent = time.perf_counter()
                try:
                    accepted = phone.upload()
                except Exception as error:  # any failure is counted and reported, never hidden
                    with lock:
                        result.errors.append(repr(error)[:200])
                    continue
                latency = time.perf_counter() - sent
                with lock:
                    result.requests += 1
                    result.tokens += accepted
                    result.latencies.append(latency)
                if on_sample is not None:
                    on_sample(phone, sent + latency)
        finally:
            http.close()

    threads = [threading.Thread(target=worker, args=(index,), daemon=True) for index in range(concurrency)]
    return _threads_run(threads, result, started, cpu_started)


def noop_run(base_url: str, *, concurrency: int, seconds: float, path: str = "/api/v1/config") -> LoadResult:
    """The web path's local limit: a cheap GET through the same gunicorn, same concurrency."""
    result = LoadResult()
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    cpu_started = _cpu_seconds()

    def worker() -> None:
        with httpx.Client(base_url=base_url, timeout=30.0) as http:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                response = http.get(path)
                latency = time.perf_counter() - sent
                with lock:
                    if response.status_code == 200:
                        result.requests += 1
                        result.latencies.append(latency)
                    else:
                        result.errors.append(response.status_code)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    return _threads_run(threads, result, started, cpu_started)


@contextmanager
def tasks_to_broker(queue: str):
    """Send this process's Celery tasks to the bench broker's ``queue`` instead of running them in-process."""
    from leavehome.celery import app

    # The app reads Django settings under the CELERY_ namespace: those are the keys that count.
    keys = ("CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_URL", "CELERY_TASK_DEFAULT_QUEUE")
    saved = {key: app.conf[key] for key in keys}
    app.conf.update(
        CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL=DEFAULT_BROKER_URL, CELERY_TASK_DEFAULT_QUEUE=queue
    )
    _connections_reset(app)
    try:
        yield app
    finally:
        app.conf.update(saved)
        _connections_reset(app)


def _connections_reset(app) -> None:
    # The pools cache connections to the broker configured before: forget them (closing them
    # would close kombu's shared producer pool under the next send).
    app._pool = None
    app.amqp._producer_pool = None


def worker_environment(database_url: str, queue: str) -> dict:
    return bench_environment(database_url, CELERY_BROKER_URL=DEFAULT_BROKER_URL, CELERY_TASK_DEFAULT_QUEUE=queue)
