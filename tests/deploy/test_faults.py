"""Fault drills on real processes: the cache (Redis) or PostgreSQL goes away under a running
web tier.

Each drill stops and starts a private instance on a port of its own (a redis-server, a
PostgreSQL cluster made by initdb); the machine's shared services are never touched. The
cache holds only rate-limit counters (sessions and login lockouts are in PostgreSQL).
"""

import base64
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from tests.conftest import PROJECT_DIR, TEST_BROKER_URL
from tests.deploy.test_topology import Processes, _free_port, _wait_for, production_env

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def processes(tmp_path):
    running = Processes(tmp_path)
    yield running
    running.stop_all()


def private_redis(processes, port, *, directory=None):
    """A redis-server of the test's own on ``port``; with ``directory``, persisted there (AOF)."""
    persistence = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(directory)] if directory else []
    process = processes.start(
        f"redis-{port}-{len(processes.running)}",
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *persistence],
        dict(os.environ),
    )
    _wait_for(
        lambda: (
            subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip()
            == "PONG"
        ),
        "the private redis-server",
    )
    return process


def _register(client, base):
    return client.post(f"{base}/api/v1/devices", content=b"{}", headers={"Content-Type": "application/json"})


def test_with_the_cache_down_the_api_serves_unthrottled_and_throttles_again_after(processes):
    cache_port, web_port = _free_port(), _free_port()
    cache = private_redis(processes, cache_port)
    env = production_env(
        TEST_BROKER_URL,
        "faults-unused",
        CACHE_URL=f"redis://127.0.0.1:{cache_port}/0",
        GUNICORN_WORKERS="1",
        THROTTLE_DEVICE_REGISTER_IP="3/hour",
    )
    processes.start_gunicorn(web_port, env)
    base = f"http://127.0.0.1:{web_port}"
    client = httpx.Client(timeout=10, headers={"X-Forwarded-Proto": "https"})
    _wait_for(lambda: client.get(f"{base}/api/v1/config").status_code == 200, "gunicorn")

    assert [_register(client, base).status_code for _ in range(4)] == [201, 201, 201, 429]

    cache.terminate()
    cache.wait(10)
    # Counters unreachable: the limits are not enforced (logged), nothing fails.
    down = [_register(client, base) for _ in range(3)]
    assert [answer.status_code for answer in down] == [201, 201, 201], down[-1].text
    secret = down[0].json()["token"]
    upload = client.post(
        f"{base}/api/v1/visits",
        content=json.dumps({"days": []}),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {secret}"},
    )
    assert upload.status_code == 202, upload.text
    assert client.get(f"{base}/api/v1/notifications", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert "rate limits not enforced" in processes.log("web")

    # The cache is back (empty): counting starts again, and the limit holds.
    private_redis(processes, cache_port)
    assert [_register(client, base).status_code for _ in range(4)] == [201, 201, 201, 429]


# Debian's server binaries (initdb, pg_ctl) are not on PATH; the newest installed version.
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name), default=Path("/"))


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own, on its own port, that it may restart at will."""

    def __init__(self, directory: Path, port: int):
        self.directory, self.port = directory, port
        # initdb and postgres refuse to run as root: as root, run them as the postgres user.
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args):
        subprocess.run([*self.as_owner, *args], check=True, capture_output=True, timeout=120)

    def init(self):
        self.directory.mkdir(mode=0o700)
        if self.as_owner:
            shutil.chown(self.directory.parent, "postgres", "postgres")
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.directory), "-A", "trust", "-U", "postgres")
        self.start()
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c", "CREATE DATABASE leavehome"],
            check=True,
            capture_output=True,
        )

    def start(self):
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory}"
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.directory),
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            "-w",
            "start",
        )

    def restart(self):
        # -l: the new server's output goes to the log, not to this process's pipes.
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.directory),
            "-l",
            str(self.directory / "log"),
            "-m",
            "fast",
            "-w",
            "restart",
        )

    def stop(self):
        subprocess.run(
            [*self.as_owner, str(PG_BIN / "pg_ctl"), "-D", str(self.directory), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )

    @property
    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/leavehome"


@pytest.fixture
def private_postgres():
    directory = Path(tempfile.mkdtemp(prefix="lh-pg-")) / "cluster"
    cluster = PrivatePostgres(directory, _free_port())
    cluster.init()
    yield cluster
    cluster.stop()
    shutil.rmtree(directory.parent, ignore_errors=True)


def _stored_tokens(database_url) -> set[bytes]:
    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as connection:
        return {bytes(row[0]) for row in connection.execute("SELECT token FROM notifications_visittoken")}


def test_postgresql_restarted_during_ingest_costs_one_503_per_connection_and_no_half_upload(
    processes, private_postgres
):
    env = production_env(
        TEST_BROKER_URL, "faults-unused", DATABASE_URL=private_postgres.url, GUNICORN_WORKERS="1", GUNICORN_THREADS="2"
    )
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr.decode()[-2000:]
    web_port = _free_port()
    web = processes.start_gunicorn(web_port, env)
    base = f"http://127.0.0.1:{web_port}"
    client = httpx.Client(timeout=10, headers={"X-Forwarded-Proto": "https"})
    _wait_for(lambda: client.get(f"{base}/api/v1/config").status_code == 200, "gunicorn")
    secret = _register(client, base).json()["token"]
    today = dt.datetime.now(ZoneInfo("Asia/Hong_Kong")).date().isoformat()

    def upload(tokens):
        body = {
            "days": [{"date": today, "tokens": [base64.urlsafe_b64encode(t).rstrip(b"=").decode() for t in tokens]}]
        }
        return client.post(
            f"{base}/api/v1/visits",
            content=json.dumps(body),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {secret}"},
        )

    accepted, refused = set(), []
    first = [os.urandom(16) for _ in range(50)]
    assert upload(first).status_code == 202
    accepted.update(first)

    private_postgres.restart()
    # Every web thread's kept connection is dead now; each fails once, then reconnects.
    for _ in range(8):
        tokens = [os.urandom(16) for _ in range(50)]
        answer = upload(tokens)
        if answer.status_code == 202:
            accepted.update(tokens)
            continue
        assert answer.status_code == 503, answer.text
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.json()["error"]["code"] == "unavailable"
        assert int(answer.headers["Retry-After"]) > 0
        refused.append(tokens)
    assert refused, "no request met a connection the restart had broken"
    assert len(refused) <= 2  # at most once per web thread
    # All or nothing: exactly the accepted uploads are stored, nothing of a refused one.
    assert _stored_tokens(private_postgres.url) == accepted
    assert web.poll() is None  # recovered without restarting gunicorn
