"""Error reports leave with no token, secret or address in them, and only when configured."""

import json
import subprocess
import sys

import pytest
import sentry_sdk
from django.urls import path
from sentry_sdk.transport import Transport

from leavehome.sentry import event_scrub, sentry_init
from tests.conftest import PROJECT_DIR

TOKEN = "AAECAwQFBgcICQoLDA0ODw"  # 16 bytes, base64url: the shape of every protocol token
SECRET = "Bearer dmVyeS1zZWNyZXQtZGV2aWNlLXRva2VuLTEyMw"
ADDRESS = "203.0.113.7"


def _raise_with_secrets(request):
    device_token = request.headers["Authorization"]
    raise ValueError(f"upload of {TOKEN} by {device_token} from {ADDRESS} failed")


urlpatterns = [path("boom", _raise_with_secrets)]


class CapturingTransport(Transport):
    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)


@pytest.fixture
def sentry_captured():
    transport = CapturingTransport()
    sentry_init(dsn="https://public@sentry.invalid/1", environment="test", traces_sample_rate=0, transport=transport)
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: the SDK is off again for the rest of the run


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_a_request_error_reaches_sentry_without_tokens_secrets_or_addresses(client, sentry_captured):
    with pytest.raises(ValueError):
        client.get(
            "/boom?token=" + TOKEN,
            HTTP_AUTHORIZATION=SECRET,
            HTTP_X_FORWARDED_FOR=ADDRESS,
            HTTP_X_REQUEST_ID="0123456789abcdef0123456789abcdef",
            HTTP_COOKIE="sessionid=abcdefghijklmnopqrstuvwxyz0123456789",
            REMOTE_ADDR=ADDRESS,
        )
    sentry_sdk.flush()
    events = [
        item.payload.json for envelope in sentry_captured.envelopes for item in envelope.items if item.type == "event"
    ]
    assert len(events) == 1
    event = events[0]
    text = json.dumps(event)
    assert "ValueError" in text  # the report is there, with its type and (scrubbed) message
    assert "upload of [redacted]" in text
    for leaked in (TOKEN, SECRET.split()[1], ADDRESS, "sessionid", "abcdefghijklmnopqrstuvwxyz0123456789"):
        assert leaked not in text
    assert "user" not in event
    assert set(event["request"].get("headers", {})) <= {"Host", "X-Request-Id", "Content-Type", "Content-Length"}
    assert event["tags"]["request_id"] == "0123456789abcdef0123456789abcdef"


def test_the_scrubber_drops_personal_request_parts_and_scrubs_every_string():
    event = {
        "user": {"ip_address": ADDRESS, "id": "1"},
        "request": {
            "url": f"https://leavehome.example/accounts/verify/MQ/{TOKEN}/",
            "query_string": f"t={TOKEN}",
            "headers": {"Authorization": SECRET, "X-Forwarded-For": ADDRESS, "Accept": "application/json"},
            "cookies": {"sessionid": "x"},
            "data": {"days": [{"tokens": [TOKEN]}]},
            "env": {"REMOTE_ADDR": ADDRESS},
        },
        "exception": {"values": [{"type": "ValueError", "value": f"{TOKEN} from {ADDRESS}"}]},
        "breadcrumbs": {"values": [{"message": f"GET /x?{TOKEN}"}]},
        "extra": {"sys.argv": ["manage.py", TOKEN]},
    }
    scrubbed = json.dumps(event_scrub(event))
    assert TOKEN not in scrubbed and ADDRESS not in scrubbed and "Bearer" not in scrubbed
    assert "sessionid" not in scrubbed and "REMOTE_ADDR" not in scrubbed
    assert '"Accept": "application/json"' in scrubbed
    assert "/accounts/verify/MQ/[redacted]/" in scrubbed


def test_sentry_is_off_unless_a_dsn_is_set():
    check = "import django; django.setup(); import sentry_sdk; print(sentry_sdk.get_client().is_active())"
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "leavehome.settings"}
    off = subprocess.run([sys.executable, "-c", check], cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    on = subprocess.run(
        [sys.executable, "-c", check],
        cwd=PROJECT_DIR,
        env={**env, "SENTRY_DSN": "https://public@sentry.invalid/1"},
        capture_output=True,
        text=True,
    )
    assert (off.stdout.strip(), on.stdout.strip()) == ("False", "True"), off.stderr + on.stderr
