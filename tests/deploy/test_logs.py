"""The production topology's logs: every line JSON, in UTC, with a request id, and nothing
in them that is a token, a secret or a client's address.

gunicorn, a Celery worker and beat run as deploy/ runs them; a phone registers, uploads a
visit through gunicorn and polls; an official publishes the case through the admin and the
worker matches it, under the admin request's id. Then every line each process wrote is
read back.
"""

import collections
import json
import sys
import uuid

import httpx
import pytest

from notifications.models import Notification
from tests import phone
from tests.deploy.scenario import (
    keys_of_this_process,
    outbreak_draft,
    phone_visits_and_uploads,
    publish_through_the_admin,
)
from tests.deploy.test_topology import _free_port, _wait_for, production_env
from tests.phone.derivation import b64u_encode
from venues.keystore import vk_decrypt

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLIENT_ADDRESS = "203.0.113.7"  # TEST-NET-3: what nginx would put in X-Forwarded-For


def _phone_through_nginx_headers(base_url, sent_request_ids):
    """A phone whose every request carries what nginx adds: a fresh request id, the client's address."""

    def as_nginx_would(request):
        request_id = uuid.uuid4().hex
        sent_request_ids[request.url.path].append(request_id)
        request.headers.update(
            {"X-Request-ID": request_id, "X-Forwarded-For": CLIENT_ADDRESS, "X-Forwarded-Proto": "https"}
        )

    http = httpx.Client(base_url=base_url, timeout=30, event_hooks={"request": [as_nginx_would]})
    return phone.Phone(http)


def test_every_log_line_is_json_with_a_request_id_and_holds_no_secret(processes, tmp_path, restore_celery):
    outbreak = outbreak_draft("LOG-1")
    queue = f"logs-{uuid.uuid4().hex[:10]}"
    broker_url = "redis://127.0.0.1:6379/14"
    # The admin over plain http without a second factor: the official's session cookie must
    # travel back to gunicorn, which has no TLS in front of it here.
    env = production_env(
        broker_url,
        queue,
        GUNICORN_WORKERS="2",
        PROXY_COUNT="1",
        OTP_ADMIN_REQUIRED="0",
        INSECURE_PLAIN_HTTP="1",
        **keys_of_this_process(),
    )
    port = _free_port()
    celery = [sys.executable, "-m", "celery", "-A", "leavehome", "--quiet"]
    processes.start_gunicorn(port, env)
    processes.start("worker", [*celery, "worker", "--concurrency=1", "-Q", queue, "-n", f"{queue}@%h"], env)
    processes.start("beat", [*celery, "beat", f"--schedule={tmp_path / 'celerybeat-schedule'}"], env)
    base = f"http://127.0.0.1:{port}"
    _wait_for(lambda: httpx.get(f"{base}/healthz", timeout=5).status_code == 200, "gunicorn healthy")

    sent = collections.defaultdict(list)
    device = _phone_through_nginx_headers(base, sent)
    assert phone_visits_and_uploads(device, outbreak) > 0
    uploaded_tokens = [b64u_encode(token) for _, token in device.uploaded]

    # An official publishes through the admin; the action's request id goes with the tasks.
    publication_request_id = uuid.uuid4().hex
    publish_through_the_admin(
        base, outbreak, headers={"X-Request-ID": publication_request_id, "X-Forwarded-For": CLIENT_ADDRESS}
    )
    _wait_for(lambda: Notification.objects.filter(device_id=device.device_id).exists(), "the publication's match")
    assert device.poll()
    processes.stop_all()

    forbidden = {
        "a client address": [CLIENT_ADDRESS],
        "the device secret": [device.secret],
        "an uploaded token": uploaded_tokens,
        "the venue key": [b64u_encode(vk_decrypt(outbreak.venue.codes.get()))],
        "a server secret": [env["SECRET_KEY"], env["TRACING_KEY"], env["KEY_ENCRYPTION_KEY"]],
        "the official's password": ["official-password-for-the-test-1"],
    }
    lines = {name: processes.log(name).splitlines() for name in ("web", "worker", "beat")}
    for name, process_lines in lines.items():
        assert process_lines, f"{name} wrote nothing"
        for line in process_lines:
            record = json.loads(line)  # every line is one JSON object
            assert "request_id" in record, line
            assert record["time"].endswith("+00:00"), line
            for what, values in forbidden.items():
                assert not any(value in line for value in values), f"{what} in the {name} log: {line}"
        assert not any("AXES: BEGIN" in line for line in process_lines)

    web = [json.loads(line) for line in lines["web"]]
    upload_lines = [r for r in web if r.get("route") == "api/v1/visits" and r.get("method") == "POST"]
    assert {r["request_id"] for r in upload_lines} == set(sent["/api/v1/visits"])
    assert all(200 <= r["status"] < 300 for r in upload_lines)
    # The publication's request id reaches the worker's lines of the tasks it led to.
    worker = [json.loads(line) for line in lines["worker"]]
    publication_tasks = {r["message"].split("[")[0] for r in worker if r["request_id"] == publication_request_id}
    assert any("notifications.publish_case" in message for message in publication_tasks), publication_tasks
    assert any("notifications.publications_sweep" in message for message in publication_tasks), publication_tasks
