"""Registering a device's push channel (``PUT/DELETE /api/v1/devices/me/push``, PROTOCOL §4).

The server will later POST to a Web Push endpoint the phone gave it, so the endpoint is a
request the server makes on a stranger's behalf: an SSRF risk. It is accepted only over
https, on the default port, on a host of PUSH_WEBPUSH_ALLOWED_HOSTS (the public push
services of the browsers; ``*.example.com`` matches subdomains only). Plain http is allowed
only for the hosts an operator lists in PUSH_WEBPUSH_INSECURE_HOSTS, which is empty unless
set: the tests name their loopback receiver there. The same check runs again before every
send (transports.py), so narrowing the list stops pushes to channels registered earlier.
"""

import re
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from leavehome.lib.b64u import b64u_decode, b64u_encode
from notifications.models import PushChannel
from notifications.push.sealing import address_hash, address_seal

MAX_ENDPOINT_LENGTH = 2048
# FCM registration tokens are opaque; these are the characters they are made of, and the
# limit keeps a hostile client from storing megabytes.
FCM_TOKEN_RE = re.compile(r"^[A-Za-z0-9_:\-]{1,4096}$")
# APNs device tokens are hex (32 bytes today; Apple warns the length may grow). Being hex is
# also what makes them safe to put in the request path.
APNS_TOKEN_RE = re.compile(r"^(?:[0-9a-fA-F]{2}){32,100}$")


def _host_allowed(host: str, patterns) -> bool:
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def webpush_endpoint_problem(endpoint) -> str | None:
    """Why this Web Push endpoint may not be pushed to, or None when it may (the SSRF guard)."""
    if not isinstance(endpoint, str) or not endpoint:
        return "Must be a URL."
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        return f"Must be at most {MAX_ENDPOINT_LENGTH} characters."
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        return "Must be a URL."
    host = (parts.hostname or "").lower()
    if parts.username is not None or parts.password is not None or not host:
        return "Must be a URL with a host and no credentials."
    if parts.scheme == "http" and _host_allowed(host, settings.PUSH_WEBPUSH_INSECURE_HOSTS):
        return None
    if parts.scheme != "https":
        return "Must be an https URL."
    if port not in (None, 443):
        return "Must use the default https port."
    if not _host_allowed(host, settings.PUSH_WEBPUSH_ALLOWED_HOSTS):
        return "This push service is not accepted."
    return None


def _webpush_address(data: dict) -> dict:
    subscription = data.get("subscription")
    if not isinstance(subscription, dict):
        raise ValidationError({"subscription": ["Must be an object with endpoint and keys."]})
    errors = {}
    endpoint = subscription.get("endpoint")
    problem = webpush_endpoint_problem(endpoint)
    if problem:
        errors["subscription.endpoint"] = [problem]
    keys = subscription.get("keys")
    if not isinstance(keys, dict):
        errors["subscription.keys"] = ["Must be an object with p256dh and auth."]
    else:
        try:
            p256dh = b64u_decode(keys.get("p256dh"), padded=True)
            if len(p256dh) != 65 or p256dh[0] != 4:
                raise ValueError("wrong length")
            # Also proves the point is on the curve: a bad key would fail every encryption.
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
        except ValueError:
            errors["subscription.keys.p256dh"] = ["Must be a base64url uncompressed P-256 public key (65 bytes)."]
        try:
            auth = b64u_decode(keys.get("auth"), padded=True)
            if len(auth) != 16:
                raise ValueError("wrong length")
        except ValueError:
            errors["subscription.keys.auth"] = ["Must be a base64url 16-byte secret."]
    if errors:
        raise ValidationError(errors)
    return {"endpoint": endpoint, "p256dh": b64u_encode(p256dh), "auth": b64u_encode(auth)}


def _token_address(data: dict, pattern: re.Pattern, message: str) -> dict:
    token = data.get("token")
    if not isinstance(token, str) or not pattern.fullmatch(token):
        raise ValidationError({"token": [message]})
    return {"token": token}


def push_address_validate(data) -> tuple[str, dict]:
    """The kind and canonical address of a PROTOCOL §4 push body; ValidationError with field paths."""
    if not isinstance(data, dict):
        raise ValidationError({"_": ["Must be a JSON object."]})
    kind = data.get("kind")
    if kind == PushChannel.Kind.WEBPUSH:
        return kind, _webpush_address(data)
    if kind == PushChannel.Kind.FCM:
        return kind, _token_address(data, FCM_TOKEN_RE, "Must be an FCM registration token.")
    if kind == PushChannel.Kind.APNS:
        return kind, _token_address(data, APNS_TOKEN_RE, "Must be a hex APNs device token.")
    raise ValidationError({"kind": ["Must be one of: webpush, fcm, apns."]})


def _address_id(address: dict) -> str:
    return address.get("endpoint") or address["token"]


@transaction.atomic
def push_channel_set(*, device, data: dict) -> PushChannel:
    """Validate a PROTOCOL §4 push body and make it the device's one push channel.

    Replaces any earlier channel of the device (re-activating it). An address belongs to one
    device: when an app is reinstalled and registers its token again under a new device, the
    old device's channel is dropped, so the phone is not woken for someone else's
    notifications.
    """
    kind, address = push_address_validate(data)
    digest = address_hash(kind=kind, address_id=_address_id(address))
    PushChannel.objects.filter(address_hash=digest).exclude(device=device).delete()
    channel, _ = PushChannel.objects.update_or_create(
        device=device,
        defaults={
            "kind": kind,
            "address_hash": digest,
            "address_sealed": address_seal(device_id=device.pk, kind=kind, address=address),
            "active": True,
            "deactivated_reason": "",
        },
    )
    return channel


def push_channel_clear(*, device) -> None:
    """Forget the device's push channel: it is not pushed to any more and polls instead."""
    PushChannel.objects.filter(device=device).delete()
