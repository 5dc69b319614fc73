"""The web path under load: deploy/Procfile's web, worker and beat on the bench's own port,
queue and Redis database, and phones played by the reference client (tests.phone).

Phones are registered through the device service beforehand (registration is not what is
measured); their uploads are derived by the reference client from verified venue codes, as
a phone derives them, and sent over HTTP by a load generator (bench/b1_ingest.py).
"""

import datetime as dt
import json
import random
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import DEFAULT_BROKER_URL, bench_environment
from bench.processes import (
    free_port,
    procfile_start,
    wait_http_ok,
    wait_worker_ready,
)

CACHE_URL = "redis://127.0.0.1:6379/13"


@dataclass
class DeployedStack:
    """deploy/Procfile's web, worker and beat, on the bench's own port, queue and Redis database."""

    port: int
    queue: str
    broker_url: str
    web: object
    worker: object
    beat: object

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def servers(self) -> list:
        return [self.web, self.worker, self.beat]

    def sample_rss(self) -> None:
        for server in self.servers:
            server.sample_rss()

    def backlog(self) -> dict[str, int]:
        """What is not matched yet: dates waiting in the upload backlog table, chunks in the
        publication backlog table (each deleted with its notifications and its run record), and
        matching tasks queued or taken but not acknowledged on the broker (its list and its
        ``unacked`` hash). The sweeps' tasks are not counted: they are the machinery, not work."""
        import redis
        from django.db import connection

        from notifications.models import PublicationBacklog, UploadBacklog

        client = redis.Redis.from_url(self.broker_url)
        try:
            queued = _matching_tasks(client.lrange(self.queue, 0, -1))
            taken = _matching_tasks(json.loads(value)[0] for value in client.hvals("unacked"))
        finally:
            client.close()
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT count(*) FROM "{UploadBacklog._meta.db_table}"')
            (dates,) = cursor.fetchone()
            cursor.execute(f'SELECT count(*) FROM "{PublicationBacklog._meta.db_table}"')
            (chunks,) = cursor.fetchone()
        return {
            "upload backlog rows (dates)": dates,
            "publication backlog rows (chunks)": chunks,
            "matching tasks queued": queued,
            "matching tasks taken": taken,
        }

    def drained(self) -> bool:
        return not any(self.backlog().values())


MATCHING_TASKS = {"notifications.match_publication", "notifications.match_uploads"}


def _matching_tasks(messages) -> int:
    """How many of the broker's messages (kombu's JSON envelopes) are matching tasks."""
    count = 0
    for message in messages:
        envelope = json.loads(message) if isinstance(message, bytes | str) else message
        count += envelope.get("headers", {}).get("task") in MATCHING_TASKS
    return count


@contextmanager
def deployed_stack(database_url: str, *, settings_module: str = "bench.settings", **extra: str):
    """Start deploy/Procfile's ``web``, ``worker`` and ``beat`` as a process manager would, with
    their defaults (gunicorn from deploy/gunicorn.conf.py; CELERY_CONCURRENCY and the GUNICORN_*
    variables pass through from the environment if set), stopped on exit.

    The broker and the cache are the bench's Redis databases, flushed first so nothing of an
    earlier run is left in the queue or counted by the rate limits; web serves
    ``settings_module`` (the production settings plus the bare view of bench/urls.py);
    ``extra`` adds to every server's environment."""
    import redis

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    for url in (DEFAULT_BROKER_URL, CACHE_URL):
        redis.Redis.from_url(url).flushdb()
    schedule = Path(tempfile.mkdtemp(prefix="lh-bench-beat-")) / "celerybeat-schedule"
    environment = bench_environment(
        database_url,
        CELERY_BROKER_URL=DEFAULT_BROKER_URL,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        CACHE_URL=CACHE_URL,
        CELERY_BEAT_SCHEDULE_FILE=str(schedule),
        GUNICORN_BIND=f"127.0.0.1:{port}",
        **extra,
    )
    started = []
    try:
        web = procfile_start("web", {**environment, "DJANGO_SETTINGS_MODULE": settings_module})
        started.append(web)
        worker = procfile_start("worker", environment)
        started.append(worker)
        beat = procfile_start("beat", environment)
        started.append(beat)
        wait_http_ok(web, port)
        wait_worker_ready(worker, DEFAULT_BROKER_URL)
        time.sleep(1.0)  # every gunicorn worker booted, beat's first tick sent
        yield DeployedStack(port=port, queue=queue, broker_url=DEFAULT_BROKER_URL, web=web, worker=worker, beat=beat)
    finally:
        for server in reversed(started):
            server.sample_rss()
            server.stop()


def drain_wait(stack: DeployedStack, *, timeout: float, on_sample=None, interval: float = 0.05) -> bool:
    """Wait until nothing is left to match (``stack.drained()``); False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        backlog = stack.backlog()
        if on_sample is not None:
            on_sample(backlog)
        if not any(backlog.values()):
            return True
        time.sleep(interval)
    return False


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
