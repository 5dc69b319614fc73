"""The push canary: a test push to each operator device, every outcome a metric."""

import io

import pytest
from django.core.management import CommandError, call_command
from prometheus_client import REGISTRY

from notifications.push.tasks import push_canary
from tests.notifications.push_fixtures import device_make, device_with_channel, fcm_token, webpush_body

pytestmark = pytest.mark.django_db


def _canary(provider, status):
    return REGISTRY.get_sample_value("leavehome_push_canary_total", {"provider": provider, "status": status}) or 0.0


def test_the_canary_reaches_the_operators_device_and_counts_each_provider(webpush_receiver, fcm_peer, settings):
    device = device_with_channel(webpush_body(webpush_receiver.subscribe()))
    settings.PUSH_CANARY_DEVICES = [str(device.pk)]
    delivered, fcm_without_canary = _canary("webpush", "delivered"), _canary("fcm", "no_canary")
    out = io.StringIO()
    call_command("push_canary", stdout=out)
    [push] = webpush_receiver.received
    assert push.content["type"] == "lhs1.test"
    assert f"{device.pk} (webpush): delivered" in out.getvalue()
    assert _canary("webpush", "delivered") == delivered + 1
    # FCM is configured too, but no canary device uses it: that is counted, so it is seen.
    assert _canary("fcm", "no_canary") == fcm_without_canary + 1


def test_a_failing_canary_is_counted_and_fails_the_command(fcm_peer, settings):
    fcm_peer.script(fcm_token(), [(503, fcm_peer.error(503, "UNAVAILABLE"), None)])
    device = device_with_channel({"kind": "fcm", "token": fcm_token()})
    settings.PUSH_CANARY_DEVICES = [str(device.pk), "not-a-device"]
    retrying, missing = _canary("fcm", "retrying"), _canary("none", "no_device")
    with pytest.raises(CommandError, match="not delivered"):
        call_command("push_canary", stdout=io.StringIO())
    assert _canary("fcm", "retrying") == retrying + 1
    assert _canary("none", "no_device") == missing + 1


def test_the_beat_task_counts_a_canary_that_lost_its_channel(settings):
    settings.PUSH_CANARY_DEVICES = [str(device_make().pk)]
    before = _canary("none", "no_channel")
    push_canary.delay()  # eager here: the task body
    assert _canary("none", "no_channel") == before + 1


def test_the_command_says_when_no_canary_is_listed(settings):
    settings.PUSH_CANARY_DEVICES = []
    with pytest.raises(CommandError, match="PUSH_CANARY_DEVICES"):
        call_command("push_canary")
