"""One class per push service. Each sends one wake-up and says how a failure should be treated.

A transport raises :class:`TransportError` when a push did not go through. ``permanent``
means retrying cannot help (stop); ``deactivate`` means the address itself is dead (the
service forgot the subscription or token: 404/410, FCM ``UNREGISTERED``/``NOT_FOUND``, APNs
``Unregistered``/``BadDeviceToken``), so the channel is switched off and the phone polls. Anything
else (timeouts, refused connections, 429 with its ``Retry-After``, 5xx) is transient and is
retried with backoff by delivery.py. A transport whose credentials are not configured raises
:class:`TransportDisabled` when made; its pushes are recorded as disabled.

What travels: no venue, time or risk in clear (PROTOCOL §4). Web Push carries a small JSON
object, encrypted end to end (RFC 8291 aes128gcm) for the browser: what to fetch, not what
happened. FCM and APNs messages are content-free wake-ups (an FCM data-only message, an APNs
background push); the app then polls ``GET /api/v1/notifications``.

A transport holds one HTTP client (keep-alive, HTTP/2 where the service speaks it) for a
whole batch; delivery.py makes one per kind per task, and sends from a small thread pool,
so the clients and credential caches here are thread-safe.
"""

import email.utils
import json
import logging
import ssl
import threading
import time

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from py_vapid import Vapid02
from pywebpush import WebPusher

from leavehome.digits import is_ascii_digits
from notifications.push.channels import webpush_endpoint_problem

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 6 * 3600
# Web Push and FCM collapse pending messages with the same topic: an app that was offline
# needs to be woken once, not once per notification, since it fetches them all.
COLLAPSE_KEY = "lhs1"


class TransportError(Exception):
    """A push that did not go through, with what to do about it."""

    def __init__(self, message, *, permanent=False, deactivate=False, retry_after=None):
        super().__init__(message)
        self.message = str(message)[:200]
        self.deactivate = deactivate
        self.permanent = permanent or deactivate
        self.retry_after = retry_after


class TransportDisabled(Exception):
    """The transport's credentials are not configured; the message says which setting is missing."""


def retry_after_seconds(response) -> float | None:
    """The response's ``Retry-After`` (delta-seconds or an HTTP date) in seconds, bounded."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    if is_ascii_digits(value):  # delta-seconds is 1*DIGIT (RFC 9110); float() took "nan" and "١٢٠"
        seconds = float(value)
    else:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _transient_or_permanent(service, response, detail=""):
    """The error for a failed answer that names no dead address: 429 and 5xx may pass, the rest will not."""
    status = response.status_code
    message = f"{service} answered {status}{' ' + detail if detail else ''}"
    if status == 429 or status >= 500:
        return TransportError(message, retry_after=retry_after_seconds(response))
    return TransportError(message, permanent=True)


class Transport:
    kind = ""
    http2 = False

    def __init__(self):
        self.ttl = settings.PUSH_TTL_SECONDS
        pool = settings.PUSH_CONCURRENCY
        self.client = httpx.Client(
            http2=self.http2,
            verify=self._verify(),
            timeout=httpx.Timeout(settings.PUSH_TIMEOUT_SECONDS),
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        )

    def _verify(self):
        return True

    def send(self, address: dict, message: dict) -> None:
        """Push ``message`` (a small JSON-able dict) to ``address``; raise TransportError if it failed."""
        raise NotImplementedError

    def close(self):
        self.client.close()

    def _post(self, url, **kwargs) -> httpx.Response:
        # httpx follows no redirects unless asked: a push service answering 3xx cannot send
        # the server to an address the allow-list never saw (a 3xx counts as a permanent failure).
        try:
            return self.client.post(url, **kwargs)
        except httpx.TimeoutException as error:
            raise TransportError(f"{self.kind}: timed out ({type(error).__name__})") from error
        except httpx.HTTPError as error:
            raise TransportError(f"{self.kind}: connection failed ({type(error).__name__})") from error


def vapid_key_load(value: str) -> Vapid02:
    """The VAPID signing key from a PEM, a base64url DER or a base64url raw 32-byte private key."""
    if "-----BEGIN" in value:
        return Vapid02(serialization.load_pem_private_key(value.encode(), password=None))
    return Vapid02.from_string(value)


class WebPushTransport(Transport):
    """Web Push (RFC 8030) with aes128gcm payload encryption (RFC 8291) and VAPID (RFC 8292)."""

    kind = "webpush"
    # The browsers' push services speak HTTP/2 (negotiated by ALPN; HTTP/1.1 otherwise).
    http2 = True
    # A VAPID token may live up to 24 hours; signing one per push service origin every few
    # hours instead of one per push matters at a thousand pushes a second.
    VAPID_TOKEN_SECONDS = 12 * 3600
    VAPID_RENEW_BEFORE_SECONDS = 3600

    def __init__(self):
        if not settings.PUSH_VAPID_PRIVATE_KEY or not settings.PUSH_VAPID_SUBJECT:
            raise TransportDisabled("PUSH_VAPID_PRIVATE_KEY and PUSH_VAPID_SUBJECT must both be set")
        try:
            self.vapid = vapid_key_load(settings.PUSH_VAPID_PRIVATE_KEY)
        except Exception as error:  # any unreadable key means the same: this transport is off
            raise TransportDisabled(f"PUSH_VAPID_PRIVATE_KEY cannot be read ({type(error).__name__})") from error
        if not settings.PUSH_VAPID_SUBJECT.startswith(("mailto:", "https:")):
            # RFC 8292 §2.1: the push services' way to reach the operator.
            raise TransportDisabled("PUSH_VAPID_SUBJECT must be a mailto: or https: URI")
        self.subject = settings.PUSH_VAPID_SUBJECT
        self._authorizations = {}
        super().__init__()

    def _authorization(self, audience: str) -> str:
        now = time.time()
        cached = self._authorizations.get(audience)
        if cached and cached[1] - now > self.VAPID_RENEW_BEFORE_SECONDS:
            return cached[0]
        expires = int(now) + self.VAPID_TOKEN_SECONDS
        header = self.vapid.sign({"aud": audience, "sub": self.subject, "exp": expires})["Authorization"]
        self._authorizations[audience] = (header, expires)
        return header

    def send(self, address, message):
        endpoint = address["endpoint"]
        problem = webpush_endpoint_problem(endpoint)
        if problem:
            # The allow-list was narrowed since the channel was registered.
            raise TransportError(f"webpush: endpoint refused: {problem}", deactivate=True)
        subscription = {"endpoint": endpoint, "keys": {"p256dh": address["p256dh"], "auth": address["auth"]}}
        plaintext = json.dumps(message, separators=(",", ":")).encode()
        body = WebPusher(subscription).encode(plaintext, content_encoding="aes128gcm")["body"]
        url = httpx.URL(endpoint)
        audience = f"{url.scheme}://{url.netloc.decode('ascii')}"
        response = self._post(
            endpoint,
            content=body,
            headers={
                "Authorization": self._authorization(audience),
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
                "TTL": str(self.ttl),
                "Urgency": "high",
                "Topic": COLLAPSE_KEY,
            },
        )
        if response.status_code in (200, 201, 202):
            return
        if response.status_code in (404, 410):
            raise TransportError(f"webpush: subscription gone ({response.status_code})", deactivate=True)
        raise _transient_or_permanent("webpush", response)


class _CachedCredential:
    """A credential shared by every transport of the process until shortly before it expires.

    A failure to get one is remembered for FAILURE_SECONDS, so a batch of hundreds of pushes
    meeting a broken token endpoint asks it once, not once per push.
    """

    FAILURE_SECONDS = 5.0

    def __init__(self):
        self._lock = threading.Lock()
        self._values = {}
        self._failures = {}

    def get(self, key, make, *, margin):
        with self._lock:
            error, until = self._failures.get(key, (None, 0.0))
            if error is not None and time.time() < until:
                raise error
            value, expires = self._values.get(key, (None, 0.0))
            if value is None or expires - time.time() < margin:
                try:
                    value, lifetime = make()
                except TransportError as failure:
                    self._failures[key] = (failure, time.time() + self.FAILURE_SECONDS)
                    raise
                self._failures.pop(key, None)
                self._values[key] = (value, time.time() + lifetime)
            return value

    def forget(self, key):
        with self._lock:
            self._values.pop(key, None)


_fcm_access_tokens = _CachedCredential()
_apns_provider_tokens = _CachedCredential()


class FcmTransport(Transport):
    """Firebase Cloud Messaging HTTP v1, authorised by the OAuth 2 service-account (JWT bearer) flow."""

    kind = "fcm"
    http2 = True
    SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
    DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)

    def __init__(self):
        path = settings.PUSH_FCM_CREDENTIALS_FILE
        if not path:
            raise TransportDisabled("PUSH_FCM_CREDENTIALS_FILE is not set")
        try:
            with open(path, encoding="utf-8") as credentials_file:
                credentials = json.load(credentials_file)
            self.client_email = credentials["client_email"]
            self.private_key = serialization.load_pem_private_key(credentials["private_key"].encode(), password=None)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise TransportDisabled(f"PUSH_FCM_CREDENTIALS_FILE cannot be used ({type(error).__name__})") from error
        self.private_key_id = credentials.get("private_key_id")
        project = settings.PUSH_FCM_PROJECT_ID or credentials.get("project_id")
        if not project:
            raise TransportDisabled("PUSH_FCM_PROJECT_ID is not set and the credentials name no project_id")
        self.token_url = settings.PUSH_FCM_TOKEN_URL or credentials.get("token_uri") or self.DEFAULT_TOKEN_URL
        self.send_url = f"{settings.PUSH_FCM_API_URL.rstrip('/')}/v1/projects/{project}/messages:send"
        super().__init__()

    def _fetch_access_token(self):
        now = int(time.time())
        assertion = jwt.encode(
            {"iss": self.client_email, "scope": self.SCOPE, "aud": self.token_url, "iat": now, "exp": now + 3600},
            self.private_key,
            algorithm="RS256",
            headers={"kid": self.private_key_id} if self.private_key_id else None,
        )
        response = self._post(
            self.token_url,
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
        )
        if response.status_code != 200:
            # Even a refused grant is retried: it is the operator's configuration, not the
            # device, that is wrong, and the number of attempts is bounded.
            raise TransportError(f"fcm: OAuth token endpoint answered {response.status_code}")
        try:
            answer = response.json()
            return answer["access_token"], float(answer.get("expires_in", 3600))
        except (ValueError, KeyError) as error:
            raise TransportError("fcm: OAuth token endpoint answered without an access token") from error

    def send(self, address, message):
        cache_key = (self.token_url, self.client_email)
        access_token = _fcm_access_tokens.get(cache_key, self._fetch_access_token, margin=300)
        body = {
            "message": {
                "token": address["token"],
                # Data-only, so the app decides what to show after it has fetched; values are strings.
                "data": {"type": str(message["type"])},
                "android": {"priority": "HIGH", "ttl": f"{self.ttl}s", "collapse_key": COLLAPSE_KEY},
            }
        }
        response = self._post(self.send_url, json=body, headers={"Authorization": f"Bearer {access_token}"})
        if response.status_code == 200:
            return
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        status = error.get("status", "")
        codes = {detail.get("errorCode") for detail in error.get("details", []) if isinstance(detail, dict)}
        if response.status_code == 404 or status == "NOT_FOUND" or "UNREGISTERED" in codes:
            raise TransportError(f"fcm: token unregistered ({response.status_code})", deactivate=True)
        if "SENDER_ID_MISMATCH" in codes:
            raise TransportError("fcm: token belongs to another sender", deactivate=True)
        if response.status_code == 401:
            _fcm_access_tokens.forget(cache_key)
            raise TransportError("fcm: access token refused (401); will fetch a new one")
        raise _transient_or_permanent("fcm", response, status)


class ApnsTransport(Transport):
    """Apple Push Notification service: token-based (ES256 JWT) authentication over HTTP/2."""

    kind = "apns"
    http2 = True
    # Apple refuses provider tokens older than an hour and throttles renewing more often than
    # every 20 minutes.
    PROVIDER_TOKEN_SECONDS = 50 * 60
    # "Unregistered" (410), "BadDeviceToken" and "DeviceTokenNotForTopic" (400): the token is dead here.
    DEAD_TOKEN_REASONS = {"Unregistered", "BadDeviceToken", "DeviceTokenNotForTopic"}

    def __init__(self):
        missing = [
            name
            for name in ("PUSH_APNS_KEY_FILE", "PUSH_APNS_KEY_ID", "PUSH_APNS_TEAM_ID", "PUSH_APNS_TOPIC")
            if not getattr(settings, name)
        ]
        if missing:
            raise TransportDisabled(f"{', '.join(missing)} not set")
        try:
            with open(settings.PUSH_APNS_KEY_FILE, "rb") as key_file:
                self.signing_key = serialization.load_pem_private_key(key_file.read(), password=None)
        except (OSError, ValueError, TypeError) as error:
            raise TransportDisabled(f"PUSH_APNS_KEY_FILE cannot be read ({type(error).__name__})") from error
        # Part of the provider token cache key, so a replaced .p8 file is used at once.
        self.public_key_bytes = self.signing_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.key_id = settings.PUSH_APNS_KEY_ID
        self.team_id = settings.PUSH_APNS_TEAM_ID
        self.topic = settings.PUSH_APNS_TOPIC
        self.base_url = settings.PUSH_APNS_URL.rstrip("/")
        super().__init__()

    def _verify(self):
        if settings.PUSH_APNS_CA_FILE:
            return ssl.create_default_context(cafile=settings.PUSH_APNS_CA_FILE)
        return True

    def _make_provider_token(self):
        token = jwt.encode(
            {"iss": self.team_id, "iat": int(time.time())},
            self.signing_key,
            algorithm="ES256",
            headers={"kid": self.key_id},
        )
        return token, self.PROVIDER_TOKEN_SECONDS

    def send(self, address, message):
        cache_key = (self.team_id, self.key_id, self.public_key_bytes)
        provider_token = _apns_provider_tokens.get(cache_key, self._make_provider_token, margin=0)
        # A background push: no alert, sound or badge, only "wake up and fetch".
        payload = {"aps": {"content-available": 1}, "type": str(message["type"])}
        response = self._post(
            f"{self.base_url}/3/device/{address['token']}",
            content=json.dumps(payload, separators=(",", ":")).encode(),
            headers={
                "authorization": f"bearer {provider_token}",
                "apns-push-type": "background",
                "apns-priority": "5",
                "apns-topic": self.topic,
                "apns-expiration": str(int(time.time()) + self.ttl),
                "apns-collapse-id": COLLAPSE_KEY,
            },
        )
        if response.status_code == 200:
            return
        try:
            reason = response.json().get("reason", "")
        except ValueError:
            reason = ""
        if response.status_code == 410 or reason in self.DEAD_TOKEN_REASONS:
            raise TransportError(f"apns: {reason or 'Unregistered'} ({response.status_code})", deactivate=True)
        if reason in {"ExpiredProviderToken", "InvalidProviderToken"}:
            _apns_provider_tokens.forget(cache_key)
            raise TransportError(f"apns: {reason}; will sign a new provider token")
        raise _transient_or_permanent("apns", response, reason)


TRANSPORTS = {cls.kind: cls for cls in (WebPushTransport, FcmTransport, ApnsTransport)}
