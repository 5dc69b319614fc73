"""Shared fixtures. The suite runs against whatever DATABASE_URL names: PostgreSQL in CI
(the production path), SQLite for the embedded default."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

PROJECT_DIR = Path(__file__).resolve().parent.parent
# Tests that run real worker processes talk to this broker (CI and developers: local Redis).
TEST_BROKER_URL = os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15")


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    skip_postgres = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL=postgres://…)")
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is not None and marker.kwargs.get("serialized_rollback"):
            # Reloading the serialized database collides with the content types an earlier
            # flush recreated under new ids (IntegrityError, only in a full run). Transactional
            # tests run after all others, so their flushes need no undoing.
            raise pytest.UsageError(f"{item.nodeid}: serialized_rollback=True is not used in this suite")
        # Worker processes cannot open SQLite's in-memory test database: broker tests need
        # PostgreSQL too.
        if ("postgres" in item.keywords or "broker" in item.keywords) and not on_postgres:
            item.add_marker(skip_postgres)


@pytest.fixture(autouse=True)
def _empty_cache():
    """Every test starts with no throttle counters (the cache outlives a test's transaction)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def on_postgres():
    return connection.vendor == "postgresql"


def database_url_for_subprocess():
    """A DATABASE_URL naming the database this test uses (the test database, not the dev one)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        user = db.get("USER") or "postgres"
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        return f"postgres://{user}{password}@{host}:{port}/{connection.settings_dict['NAME']}"
    return f"sqlite:///{connection.settings_dict['NAME']}"


class LiveWorker:
    """A real ``celery worker`` process on the test broker and the test database."""

    def __init__(self, queue, env, process):
        self.queue = queue
        self.env = env
        self.process = process

    def stop(self, sig=None):
        if self.process.poll() is None:
            if sig is None:
                self.process.terminate()
            else:
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _kill_process_group(self.process)


def _kill_process_group(process):
    # The worker runs in a session of its own with its pool children: none may outlive the
    # test, even when the parent died first (killed by a test, or never ready).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def start_worker(queue, env, *extra_args):
    """Start a worker consuming ``queue`` and wait until it answers a ping."""
    from leavehome.celery import app

    hostname = f"test-{queue}@%h"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "leavehome",
            "worker",
            "--loglevel=INFO",
            "--pool=prefork",
            "--concurrency=1",
            "-Q",
            queue,
            "-n",
            hostname,
            "--without-gossip",
            "--without-mingle",
            *extra_args,
        ],
        cwd=PROJECT_DIR,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited with {process.returncode}")
        replies = app.control.ping(timeout=1.0)
        if any(name.startswith(f"test-{queue}@") for reply in replies for name in reply):
            return LiveWorker(queue, env, process)
    _kill_process_group(process)
    process.wait()
    raise RuntimeError("celery worker did not become ready within 60 s")


def _reset_broker_connections(app):
    """Forget every connection, producer and result backend made for the previous broker.

    They are cached in three places: the app's pool, its producer pool, and kombu's global
    registry of pools (which would hand a closed pool to the next test); the result backend
    is cached per thread.
    """
    from celery._state import _set_task_join_will_block
    from kombu import pools

    # Eager tasks run from several threads at once (the race tests) save and restore
    # Celery's process-wide "inside a task" flag out of order and can leave it set, after
    # which result.get() refuses to wait ("Never call result.get() within a task!").
    _set_task_join_will_block(False)
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    pools.reset()
    if hasattr(app._local, "backend"):
        del app._local.backend


@contextlib.contextmanager
def workers_on(broker_url, settings, **extra_env):
    """Send this process's tasks through ``broker_url`` on a queue of their own; yields a
    function that starts a real worker process on that queue (as often as a test needs, e.g.
    again after killing one). Every worker started is stopped at the end."""
    from leavehome.celery import app

    queue = f"test-{uuid.uuid4().hex[:12]}"
    # The app reads Django settings under the CELERY_ namespace, so its keys carry the prefix.
    overrides = {
        "CELERY_TASK_ALWAYS_EAGER": False,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "CELERY_RESULT_BACKEND": TEST_BROKER_URL,
    }
    saved = {key: app.conf.get(key) for key in overrides}
    app.conf.update(overrides)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    _reset_broker_connections(app)
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": TEST_BROKER_URL,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    started = []

    def start():
        started.append(start_worker(queue, env))
        return started[-1]

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
        app.conf.update(saved)
        _reset_broker_connections(app)


@pytest.fixture
def live_worker(transactional_db, settings):
    """Send tasks through a real broker to a real worker process, for this test only.

    The test must use ``@pytest.mark.django_db(transaction=True)`` so that what it writes is
    committed and visible to the worker, which connects to the same test database. Each use
    gets its own queue, so concurrent test runs on one Redis never take each other's tasks.
    """
    with workers_on(TEST_BROKER_URL, settings) as start:
        yield start()


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
def page(live_server):
    """A page of Debian's chromium (through Playwright) for the live server, with a signing key."""
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test
    # itself (not from the server thread) would otherwise be refused as "async unsafe".
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    from venues.keys import signing_key_create

    signing_key_create()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True, locale="en-GB", viewport={"width": 390, "height": 844})
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
