"""The production topology as real processes: gunicorn, a Celery worker and beat on
PostgreSQL and a real broker, configured only through the environment as in deploy/."""

import base64
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from leavehome.tasks import ping
from tests.conftest import PROJECT_DIR, database_url_for_subprocess

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _random_key():
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def production_env(broker_url, queue, **extra):
    """The environment of a production deployment (deploy/env.example), on this machine."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(PROJECT_DIR)),
        "DEBUG": "0",
        "SECRET_KEY": _random_key() + _random_key(),
        "TRACING_KEY": _random_key(),
        "KEY_ENCRYPTION_KEY": _random_key(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url_for_subprocess(),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/15",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        # Nothing is mailed by these tests; production refuses to start without a mail server.
        "EMAIL_HOST": "smtp.example.invalid",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class Processes:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.running = []

    def start(self, name, args, env):
        log = open(self.tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop_all)
        process = subprocess.Popen(args, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.running.append((name, process, log))
        return process

    def start_gunicorn(self, port, env):
        """The web tier exactly as deploy/Procfile runs it, on a port of this test."""
        command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
        return self.start("web", [*command, "leavehome.wsgi"], env)

    def log(self, name):
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def stop_all(self):
        for _, process, log in reversed(self.running):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
            log.close()


@pytest.fixture
def processes(tmp_path):
    running = Processes(tmp_path)
    yield running
    running.stop_all()


def _wait_for(check, what, seconds=60):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError) as error:
            last = error
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {seconds} s (last error: {last})")


def _use_broker_from_this_process(broker_url, queue):
    from leavehome.celery import app
    from tests.conftest import _reset_broker_connections

    app.conf.update(
        {
            "CELERY_TASK_ALWAYS_EAGER": False,
            "CELERY_BROKER_URL": broker_url,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/15",
        }
    )
    _reset_broker_connections(app)


@pytest.fixture
def restore_celery():
    from leavehome.celery import app
    from tests.conftest import _reset_broker_connections

    keys = ("CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_URL", "CELERY_TASK_DEFAULT_QUEUE", "CELERY_RESULT_BACKEND")
    saved = {key: app.conf.get(key) for key in keys}
    yield
    app.conf.update(saved)
    _reset_broker_connections(app)


@pytest.mark.parametrize("broker_url", ["redis://127.0.0.1:6379/14", RABBITMQ_URL], ids=["redis", "rabbitmq"])
def test_gunicorn_worker_and_beat_serve_and_run_tasks(processes, tmp_path, broker_url, restore_celery):
    queue = f"topology-{uuid.uuid4().hex[:10]}"
    env = production_env(broker_url, queue, GUNICORN_WORKERS="2")
    port = _free_port()
    celery = [sys.executable, "-m", "celery", "-A", "leavehome"]
    processes.start_gunicorn(port, env)
    processes.start(
        "worker", [*celery, "worker", "--loglevel=INFO", "--concurrency=2", "-Q", queue, "-n", f"{queue}@%h"], env
    )
    beat = processes.start(
        "beat", [*celery, "beat", "--loglevel=INFO", f"--schedule={tmp_path / 'celerybeat-schedule'}"], env
    )

    base = f"http://127.0.0.1:{port}"
    _wait_for(lambda: httpx.get(f"{base}/healthz", timeout=5).status_code == 200, "gunicorn healthy")
    health = httpx.get(f"{base}/healthz", timeout=5).json()
    assert {key: health[key] for key in ("status", "database", "broker")} == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
    }
    assert health["beat_tick_age_seconds"] >= 0  # beat's first heartbeat, recorded by the worker

    # Production settings behind nginx: plain HTTP is redirected, X-Forwarded-Proto trusted.
    assert httpx.get(f"{base}/api/v1/config", timeout=5).status_code == 301
    config = httpx.get(f"{base}/api/v1/config", headers={"X-Forwarded-Proto": "https"}, timeout=5)
    assert config.status_code == 200, processes.log("web")[-3000:]
    assert config.json()["protocol"] == "lhs1"
    assert config.headers["Strict-Transport-Security"].startswith("max-age=31536000")

    # A task sent through the broker is run by the worker process (no eager mode).
    _use_broker_from_this_process(broker_url, queue)
    assert ping.apply_async().get(timeout=60) == "pong"

    time.sleep(2)
    assert beat.poll() is None, processes.log("beat")
    assert "beat: Starting" in processes.log("beat")
    assert "ready" in processes.log("worker")


def test_healthz_turns_503_when_beat_stops(processes, tmp_path, restore_celery):
    queue = f"beat-{uuid.uuid4().hex[:10]}"
    env = production_env(
        "redis://127.0.0.1:6379/14",
        queue,
        GUNICORN_WORKERS="1",
        HEARTBEAT_SECONDS="1",
        HEALTHZ_BEAT_MAX_AGE_SECONDS="4",
    )
    port = _free_port()
    celery = [sys.executable, "-m", "celery", "-A", "leavehome", "--quiet"]
    processes.start_gunicorn(port, env)
    processes.start("worker", [*celery, "worker", "--concurrency=1", "-Q", queue, "-n", f"{queue}@%h"], env)
    beat = processes.start("beat", [*celery, "beat", f"--schedule={tmp_path / 'celerybeat-schedule'}"], env)
    health = f"http://127.0.0.1:{port}/healthz"
    _wait_for(lambda: httpx.get(health, timeout=5).status_code == 200, "healthy with beat running")

    beat.terminate()
    beat.wait(timeout=20)
    _wait_for(lambda: httpx.get(health, timeout=5).status_code == 503, "503 once beat's heartbeat is stale")
    body = httpx.get(health, timeout=5).json()
    assert set(body["problems"]) == {"beat"}
    assert body["beat_tick_age_seconds"] > 4


def test_healthz_is_503_when_the_broker_is_down(processes, restore_celery):
    port = _free_port()
    env = production_env("redis://127.0.0.1:1/0", "unused")  # nothing listens on port 1
    processes.start_gunicorn(port, env)
    _wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 503, "503")
    body = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
    assert body["status"] == "unavailable"
    assert "broker" in body["problems"]


def test_check_deploy_is_clean_with_production_settings():
    env = production_env("redis://127.0.0.1:6379/0", "celery", ALLOWED_HOSTS="leavehome.example")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_its_secrets():
    env = production_env("redis://127.0.0.1:6379/0", "celery")
    del env["TRACING_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "TRACING_KEY" in result.stderr


def _manage(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_refuses_to_start_without_a_mail_server():
    env = production_env("redis://127.0.0.1:6379/0", "celery")
    del env["EMAIL_HOST"]
    result = _manage(env, "check")
    assert result.returncode != 0
    assert "EMAIL_HOST" in result.stderr


def test_check_deploy_warns_when_mail_is_not_delivered(tmp_path):
    env = production_env("redis://127.0.0.1:6379/0", "celery", ALLOWED_HOSTS="leavehome.example")
    del env["EMAIL_HOST"]
    env.update(EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(tmp_path))
    result = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "leavehome.W001" in result.stdout + result.stderr


def test_plain_http_is_flagged_by_check_deploy():
    env = production_env("redis://127.0.0.1:6379/0", "celery", ALLOWED_HOSTS="leavehome.example")
    result = _manage({**env, "INSECURE_PLAIN_HTTP": "1"}, "check", "--deploy")
    assert "leavehome.W002" in result.stdout + result.stderr
    assert "INSECURE_PLAIN_HTTP=1" in result.stderr  # every process says so as it starts


def test_secrets_can_come_from_files(tmp_path):
    secret_file = tmp_path / "tracing_key"
    secret_file.write_text(_random_key() + "\n")
    env = production_env("redis://127.0.0.1:6379/0", "celery")
    del env["TRACING_KEY"]
    env["TRACING_KEY_FILE"] = str(secret_file)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", "from django.conf import settings; print(settings.TRACING_KEY)"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(secret_file.read_text().strip())


def test_deploy_files_name_real_entry_points():
    deploy = Path(PROJECT_DIR, "deploy")
    procfile = (deploy / "Procfile").read_text()
    assert "gunicorn -c deploy/gunicorn.conf.py leavehome.wsgi" in procfile
    assert "celery -A leavehome --quiet worker" in procfile
    assert "celery -A leavehome --quiet beat" in procfile
    compose = (deploy / "compose.yaml").read_text()
    for service in ("postgres:", "redis:", "web:", "worker:", "beat:", "migrate:"):
        assert service in compose
    assert "deploy/gunicorn.conf.py" in (deploy / "Dockerfile").read_text()
    units = {path.name: path.read_text() for path in (deploy / "systemd").glob("*.service")}
    assert "gunicorn -c deploy/gunicorn.conf.py leavehome.wsgi" in units["leavehome-web.service"]
    assert "celery -A leavehome --quiet worker" in units["leavehome-worker.service"]
    assert "celery -A leavehome --quiet beat" in units["leavehome-beat.service"]
    # Each service has a metrics directory of its own, fresh at every start.
    assert "RuntimeDirectory=leavehome/metrics-web" in units["leavehome-web.service"]
    assert "RuntimeDirectory=leavehome/metrics-worker" in units["leavehome-worker.service"]
