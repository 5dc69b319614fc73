"""Registering push channels: validation, the SSRF allow-list, sealing at rest, one device per address."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ValidationError

from notifications.models import PushChannel
from notifications.push.channels import push_channel_clear, push_channel_set
from notifications.push.sealing import address_open
from tests.notifications.push_fixtures import apns_token, device_make, fcm_token
from tests.phone.client import ApiError

pytestmark = pytest.mark.django_db


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def subscription(endpoint, *, p256dh=None, auth=None):
    if p256dh is None:
        p256dh = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        )
    return {
        "kind": "webpush",
        "subscription": {"endpoint": endpoint, "keys": {"p256dh": b64u(p256dh), "auth": b64u(auth or b"a" * 16)}},
    }


def fields_of(error: ValidationError) -> set[str]:
    """The body paths a refusal names (the service gives them dotted, as the API answers them)."""
    return set(error.message_dict)


CHROME = "https://fcm.googleapis.com/fcm/send/dXJsLXNhZmUtdG9rZW4"


@pytest.mark.parametrize(
    "endpoint",
    [
        CHROME,
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABh",
        "https://web.push.apple.com/QGuQyavXutnMH2C1JC6Ex3cj",
        "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB",
    ],
)
def test_the_browsers_push_services_are_accepted(endpoint):
    device = device_make()
    channel = push_channel_set(device=device, data=subscription(endpoint))
    assert channel.kind == PushChannel.Kind.WEBPUSH and channel.active


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://internal.example.com/push",
        "http://fcm.googleapis.com/fcm/send/x",  # not https
        "https://fcm.googleapis.com:8443/fcm/send/x",  # not the https port
        "https://user:pw@fcm.googleapis.com/fcm/send/x",
        "https://fcm.googleapis.com.evil.example/x",
        "https://notify.windows.com.evil.example/x",
        "https://evilnotify.windows.com/x",
        "http://127.0.0.1:8080/push/x",  # loopback only when an operator allows it
        "file:///etc/passwd",
        "not a url",
    ],
)
def test_an_endpoint_outside_the_allow_list_is_refused(endpoint):
    with pytest.raises(ValidationError) as refused:
        push_channel_set(device=device_make(), data=subscription(endpoint))
    assert fields_of(refused.value) == {"subscription.endpoint"}
    assert not PushChannel.objects.exists()


def test_an_endpoint_outside_the_allow_list_is_refused_by_the_api_with_400(push_phone):
    with pytest.raises(ApiError) as refused:
        push_phone.set_push(subscription("https://169.254.169.254/latest/meta-data/"))
    assert refused.value.status == 400
    assert set(refused.value.body["error"]["fields"]) == {"subscription.endpoint"}
    assert not PushChannel.objects.exists()


def test_loopback_over_http_is_accepted_only_when_configured(settings):
    settings.PUSH_WEBPUSH_INSECURE_HOSTS = ["127.0.0.1"]
    push_channel_set(device=device_make(), data=subscription("http://127.0.0.1:8080/push/x"))
    with pytest.raises(ValidationError):
        push_channel_set(device=device_make(), data=subscription("http://localhost:8080/push/x"))


def test_the_allow_list_comes_from_settings(settings):
    settings.PUSH_WEBPUSH_ALLOWED_HOSTS = ["push.example.org"]
    push_channel_set(device=device_make(), data=subscription("https://push.example.org/s/1"))
    with pytest.raises(ValidationError):
        push_channel_set(device=device_make(), data=subscription(CHROME))


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ({"p256dh": b"\x04" + b"\x01" * 63}, "subscription.keys.p256dh"),  # 64 bytes
        ({"p256dh": b"\x04" + b"\x01" * 64}, "subscription.keys.p256dh"),  # 65 bytes, not on the curve
        ({"auth": b"a" * 15}, "subscription.keys.auth"),
        ({"auth": b"a" * 17}, "subscription.keys.auth"),
    ],
)
def test_keys_of_the_wrong_length_or_shape_are_refused(keys, field):
    with pytest.raises(ValidationError) as refused:
        push_channel_set(device=device_make(), data=subscription(CHROME, **keys))
    assert fields_of(refused.value) == {field}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "sms", "token": "x"}, "kind"),
        ({"kind": "fcm", "token": ""}, "token"),
        ({"kind": "fcm", "token": "a b"}, "token"),
        ({"kind": "fcm"}, "token"),
        ({"kind": "apns", "token": "zz" * 32}, "token"),
        ({"kind": "apns", "token": "ab" * 8}, "token"),
        ({"kind": "apns", "token": "../../3/device/" + "a" * 64}, "token"),
        ({"kind": "webpush"}, "subscription"),
        ({"kind": "webpush", "subscription": {"endpoint": CHROME}}, "subscription.keys"),
    ],
)
def test_malformed_bodies_are_refused_with_the_field_named(data, field):
    with pytest.raises(ValidationError) as refused:
        push_channel_set(device=device_make(), data=data)
    assert fields_of(refused.value) == {field}


def test_an_address_is_stored_sealed_and_opens_only_for_its_device():
    device = device_make()
    token = fcm_token()
    channel = push_channel_set(device=device, data={"kind": "fcm", "token": token})
    row = PushChannel.objects.values().get()
    assert token.encode() not in bytes(row["address_sealed"])
    assert all(token not in str(value) for value in row.values() if not isinstance(value, bytes | memoryview))
    assert address_open(device_id=device.pk, kind="fcm", sealed=channel.address_sealed) == {"token": token}
    with pytest.raises(Exception):  # noqa: B017 (AES-GCM refuses: the device id is authenticated)
        address_open(device_id=device_make().pk, kind="fcm", sealed=channel.address_sealed)


def test_setting_again_replaces_and_reactivates_the_channel():
    device = device_make()
    push_channel_set(device=device, data={"kind": "fcm", "token": fcm_token(1)})
    PushChannel.objects.update(active=False, deactivated_reason="fcm: token unregistered (404)")
    push_channel_set(device=device, data={"kind": "apns", "token": apns_token(1)})
    channel = PushChannel.objects.get()
    assert (channel.kind, channel.active, channel.deactivated_reason) == ("apns", True, "")


def test_an_address_registered_again_by_a_new_device_leaves_the_old_one():
    old, new = device_make(), device_make()
    push_channel_set(device=old, data={"kind": "apns", "token": apns_token(7)})
    push_channel_set(device=new, data={"kind": "apns", "token": apns_token(7)})
    assert list(PushChannel.objects.values_list("device_id", flat=True)) == [new.pk]


def test_clear_removes_the_channel_and_the_device_polls(push_phone):
    push_phone.set_push({"kind": "fcm", "token": fcm_token()})
    assert PushChannel.objects.count() == 1
    push_phone.clear_push()
    assert not PushChannel.objects.exists()
    push_channel_clear(device=device_make())  # clearing nothing is harmless
