"""Metrics from the production topology: gunicorn with several workers and a Celery worker,
each in prometheus_client's multiprocess mode, scraped after traffic and a publication."""

import sys
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifications.models import Notification
from tests import phone
from tests.deploy.scenario import keys_of_this_process, outbreak_draft, phone_visits_and_uploads, publish_as_an_official
from tests.deploy.test_topology import _free_port, _use_broker_from_this_process, _wait_for, production_env

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TOKEN = "metrics-token-for-this-test-only"
HTTPS = {"X-Forwarded-Proto": "https"}


def _samples(text):
    """{(name, frozenset(labels)): value} of an exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples, name, **labels):
    return sum(value for (sample, found), value in samples.items() if sample == name and set(labels.items()) <= found)


def _pids_with_files(directory: Path):
    return {path.stem.rsplit("_", 1)[-1] for path in directory.glob("*.db")}


def test_web_and_worker_metrics_after_traffic_and_a_publication(processes, tmp_path, restore_celery):
    outbreak = outbreak_draft("MET-1")
    queue = f"metrics-{uuid.uuid4().hex[:10]}"
    broker_url = "redis://127.0.0.1:6379/14"
    web_dir, worker_dir = tmp_path / "metrics-web", tmp_path / "metrics-worker"
    web_dir.mkdir()
    worker_dir.mkdir()
    (worker_dir / "counter_1.db").write_bytes(b"")  # a previous run's file, cleared at start
    worker_port = _free_port()
    common = {
        "METRICS_TOKEN": TOKEN,
        "METRICS_QUEUES": queue,
        **keys_of_this_process(),
    }
    # No beat here: /healthz leaves it out.
    web_env = production_env(
        broker_url,
        queue,
        GUNICORN_WORKERS="3",
        PROMETHEUS_MULTIPROC_DIR=str(web_dir),
        HEALTHZ_BEAT_MAX_AGE_SECONDS="0",
        **common,
    )
    worker_env = production_env(
        broker_url, queue, PROMETHEUS_MULTIPROC_DIR=str(worker_dir), METRICS_WORKER_PORT=str(worker_port), **common
    )
    port = _free_port()
    processes.start_gunicorn(port, web_env)
    processes.start(
        "worker",
        [sys.executable, "-m", "celery", "-A", "leavehome", "--quiet", "worker", "--concurrency=2", "-Q", queue],
        worker_env,
    )
    base = f"http://127.0.0.1:{port}"
    worker_metrics = f"http://127.0.0.1:{worker_port}/metrics"
    _wait_for(lambda: httpx.get(f"{base}/healthz", timeout=5).status_code == 200, "gunicorn healthy")
    _wait_for(lambda: httpx.get(worker_metrics, timeout=5).status_code == 401, "the worker's metrics endpoint")

    # Unauthenticated or wrongly authenticated scrapes are refused, on both endpoints.
    for url in (f"{base}/metrics", worker_metrics):
        assert httpx.get(url, timeout=5).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}

    # Traffic spread over gunicorn's workers: 30 config reads over fresh connections.
    for _ in range(30):
        assert httpx.get(f"{base}/api/v1/config", headers=HTTPS, timeout=5).status_code == 200
    device = phone.Phone(httpx.Client(base_url=base, headers=HTTPS, timeout=30))
    accepted = phone_visits_and_uploads(device, outbreak)
    assert accepted > 0

    _use_broker_from_this_process(broker_url, queue)
    publish_as_an_official(outbreak)
    _wait_for(lambda: Notification.objects.filter(device_id=device.device_id).exists(), "the publication's match")

    assert len(_pids_with_files(web_dir)) >= 2, "several gunicorn workers wrote metrics"
    assert "1" not in _pids_with_files(worker_dir)
    # Whichever worker answers, the scrape adds up every worker's counts.
    for _ in range(3):
        web = _samples(httpx.get(f"{base}/metrics", headers=auth, timeout=10).text)
        config_reads = _value(
            web, "leavehome_http_request_duration_seconds_count", route="api/v1/config", method="GET", status="200"
        )
        assert config_reads >= 30
    assert _value(web, "leavehome_http_request_duration_seconds_count", route="api/v1/visits", method="POST") == 1
    assert _value(web, "leavehome_uploads_total") == 1
    assert _value(web, "leavehome_upload_tokens_total") == accepted
    assert _value(web, "leavehome_notifications", risk="high") == 1
    assert ("leavehome_upload_backlog_rows", frozenset()) in web
    assert ("leavehome_upload_backlog_age_seconds", frozenset()) in web
    assert ("leavehome_publication_backlog_age_seconds", frozenset()) in web
    assert ("leavehome_queue_messages", frozenset({("queue", queue)})) in web

    def publication_counted():
        worker = _samples(httpx.get(worker_metrics, headers=auth, timeout=10).text)
        runs = _value(
            worker, "leavehome_task_duration_seconds_count", task="notifications.publications_sweep", state="SUCCESS"
        )
        return runs >= 1 and _value(worker, "leavehome_task_duration_seconds_count", task="notifications.publish_case")

    _wait_for(publication_counted, "the worker's count of the publication's matching")
