"""Fault drills on real processes: the cache (Redis) goes away under a running web tier.

The cache holds only rate-limit counters (sessions and login lockouts are in PostgreSQL). A
private redis-server on a port of this test is stopped and started again; the machine's
shared Redis is never touched.
"""

import json
import os
import subprocess

import httpx
import pytest

from tests.conftest import TEST_BROKER_URL
from tests.deploy.test_topology import Processes, _free_port, _wait_for, production_env

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def processes(tmp_path):
    running = Processes(tmp_path)
    yield running
    running.stop_all()


def _redis(processes, port):
    process = processes.start(
        f"redis-{port}-{len(processes.running)}",
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
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
    cache = _redis(processes, cache_port)
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
    _redis(processes, cache_port)
    assert [_register(client, base).status_code for _ in range(4)] == [201, 201, 201, 429]
