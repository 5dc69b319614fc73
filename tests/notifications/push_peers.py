"""Local push services for the push tests: real protocol peers on 127.0.0.1, no mocks.

- :class:`WebPushReceiver`: a push service and the browser behind it in one. It holds real
  P-256 subscriptions, checks each push's VAPID token (ES256 signature under the key in the
  header, audience, expiry, subject) and decrypts the aes128gcm payload with http_ece.
- :class:`FcmPeer`: the Google OAuth token endpoint (verifies the service account's RS256
  JWT grant) and FCM HTTP v1 ``messages:send`` (checks the bearer token and the message).
- :class:`ApnsPeer`: APNs over TLS and HTTP/2 (the h2 library), with its own CA; checks the
  ES256 provider token and the background-push headers and body.

Each answers from a script per address (``script(address, [(status, body, headers), …])``),
then with success; each records every request with the problems it found in it, so a test
asserts both what was delivered and that every request was well-formed.
"""

import base64
import datetime
import ipaddress
import json
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import h2.config
import h2.connection
import h2.events
import http_ece
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    """One request a peer received: the address it was for, what it carried, what was wrong with it."""

    address: str
    status: int
    content: dict | None = None
    problems: list = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)
    connection: int = 0


class _Scripted:
    def __init__(self):
        self.lock = threading.Lock()
        self.scripts = defaultdict(deque)
        self.received: list[Received] = []

    def script(self, address, answers):
        """Answer the next requests for ``address`` with these ``(status, body, headers)`` tuples."""
        with self.lock:
            self.scripts[address].extend(answers)

    def _next_answer(self, address, default):
        with self.lock:
            if self.scripts[address]:
                return self.scripts[address].popleft()
        return default

    def _record(self, received):
        with self.lock:
            self.received.append(received)

    def for_address(self, address):
        return [item for item in self.received if item.address == address]

    @property
    def problems(self):
        return [problem for item in self.received for problem in item.problems]


class _HttpPeer(_Scripted):
    """An HTTP/1.1 keep-alive server on 127.0.0.1 in a thread; subclasses handle POSTs."""

    def __init__(self):
        super().__init__()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, answer, headers = peer.handle(self.path, self.headers, body, id(self.connection))
                payload = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, path, headers, body, connection):
        raise NotImplementedError

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Subscription:
    """A browser's push subscription: the endpoint and the keys the server encrypts to."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    @property
    def p256dh(self) -> str:
        return b64u(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    def as_json(self) -> dict:
        """What ``PushSubscription.toJSON()`` gives the app, to send in PUT /api/v1/devices/me/push."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": b64u(self.auth)}}


class WebPushReceiver(_HttpPeer):
    """A Web Push service (RFC 8030) and the browser holding its subscriptions' private keys."""

    def __init__(self, *, vapid_public_key: bytes | None = None):
        self.subscriptions = {}
        # The application server key the browser subscribed with: a push signed by another key is refused.
        self.vapid_public_key = vapid_public_key
        super().__init__()

    def subscribe(self) -> Subscription:
        name = secrets.token_urlsafe(12)
        subscription = Subscription(
            endpoint=f"{self.url}/push/{name}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=secrets.token_bytes(16),
        )
        self.subscriptions[name] = subscription
        return subscription

    def handle(self, path, headers, body, connection):
        name = path.rsplit("/", 1)[-1]
        subscription = self.subscriptions.get(name)
        endpoint = f"{self.url}{path}"
        received = Received(address=endpoint, status=0, connection=connection)
        if subscription is None:
            received.status = 404
            self._record(received)
            return 404, None, None
        received.problems.extend(self._vapid_problems(headers.get("Authorization", "")))
        if headers.get("Content-Encoding") != "aes128gcm":
            received.problems.append(f"Content-Encoding is {headers.get('Content-Encoding')!r}")
        if not (headers.get("TTL") or "").isdigit():
            received.problems.append("no TTL")
        try:
            plaintext = http_ece.decrypt(
                body, private_key=subscription.private_key, auth_secret=subscription.auth, version="aes128gcm"
            )
            received.content = json.loads(plaintext)
        except Exception as error:
            received.problems.append(f"cannot decrypt: {error!r}")
        status, answer, answer_headers = self._next_answer(endpoint, (201, None, None))
        if received.problems:
            status, answer, answer_headers = 400, {"problems": received.problems}, None
        received.status = status
        self._record(received)
        return status, answer, answer_headers

    def _vapid_problems(self, authorization):
        scheme, _, params = authorization.partition(" ")
        if scheme.lower() != "vapid":
            return [f"Authorization scheme {scheme!r} is not vapid"]
        parts = dict(part.strip().split("=", 1) for part in params.split(",") if "=" in part)
        try:
            key_bytes = b64u_decode(parts["k"])
            public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key_bytes)
            claims = jwt.decode(
                parts["t"], public_key, algorithms=["ES256"], audience=self.url, options={"require": ["exp", "sub"]}
            )
        except Exception as error:
            return [f"VAPID token does not verify: {error!r}"]
        problems = []
        if claims["exp"] > time.time() + 24 * 3600:
            problems.append("VAPID token lives longer than 24 hours")
        if not str(claims["sub"]).startswith(("mailto:", "https:")):
            problems.append(f"VAPID subject {claims['sub']!r}")
        if self.vapid_public_key is not None and key_bytes != self.vapid_public_key:
            problems.append("signed by another application server key")
        return problems


def service_account(token_uri: str, project_id: str = "leavehome-test") -> tuple[dict, rsa.RSAPublicKey]:
    """A Google service-account key file's contents, with a fresh RSA key, and its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": f"push@{project_id}.iam.gserviceaccount.com",
        "token_uri": token_uri,
    }
    return info, key.public_key()


class FcmPeer(_HttpPeer):
    """Google's OAuth 2 token endpoint (JWT bearer grant) and FCM HTTP v1 messages:send."""

    SCOPE = "https://www.googleapis.com/auth/firebase.messaging"

    def __init__(self, project_id="leavehome-test"):
        super().__init__()
        self.project_id = project_id
        self.token_url = f"{self.url}/token"
        self.credentials, self.public_key = service_account(self.token_url, project_id)
        self.access_tokens = set()
        self.token_grants = 0

    def handle(self, path, headers, body, connection):
        if path == "/token":
            return self._grant(headers, body)
        if path == f"/v1/projects/{self.project_id}/messages:send":
            return self._send(headers, body, connection)
        return 404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "no such path"}}, None

    def _grant(self, headers, body):
        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        try:
            if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
                raise ValueError(f"grant_type {form.get('grant_type')!r}")
            claims = jwt.decode(
                form["assertion"],
                self.public_key,
                algorithms=["RS256"],
                audience=self.token_url,
                issuer=self.credentials["client_email"],
                options={"require": ["exp", "iat", "scope"]},
            )
            if claims["scope"] != self.SCOPE:
                raise ValueError(f"scope {claims['scope']!r}")
            if jwt.get_unverified_header(form["assertion"]).get("kid") != self.credentials["private_key_id"]:
                raise ValueError("kid is not the key's id")
        except Exception as error:
            self._record(Received(address="token", status=400, problems=[f"grant refused: {error!r}"]))
            return 400, {"error": "invalid_grant"}, None
        token = "ya29." + secrets.token_urlsafe(24)
        with self.lock:
            self.access_tokens.add(token)
            self.token_grants += 1
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}, None

    def _send(self, headers, body, connection):
        received = Received(address="", status=0, connection=connection)
        authorization = headers.get("Authorization", "")
        if not authorization.startswith("Bearer ") or authorization[7:] not in self.access_tokens:
            received.problems.append("bearer token not issued by the token endpoint")
            received.status = 401
            self._record(received)
            return 401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}}, None
        try:
            message = json.loads(body)["message"]
            received.address = message["token"]
            received.content = message
            if set(message) - {"token", "data", "android", "apns", "webpush"}:
                received.problems.append(f"unexpected keys {sorted(set(message))}")
            if "notification" in message:
                received.problems.append("not a data-only message")
            if not all(isinstance(value, str) for value in message.get("data", {}).values()):
                received.problems.append("data values must be strings")
        except (ValueError, KeyError, TypeError) as error:
            received.problems.append(f"malformed message: {error!r}")
        if received.problems:
            received.status = 400
            self._record(received)
            return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT"}}, None
        status, answer, answer_headers = self._next_answer(
            received.address, (200, {"name": f"projects/{self.project_id}/messages/{uuid.uuid4().int}"}, None)
        )
        received.status = status
        self._record(received)
        return status, answer, answer_headers

    @staticmethod
    def error(status, code_status, error_code=None):
        """An FCM v1 error body, e.g. ``error(404, "NOT_FOUND", "UNREGISTERED")``."""
        details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]
        return {"error": {"code": status, "status": code_status, "details": details if error_code else []}}


def make_ca_and_server_certificate(directory):
    """A CA and a certificate for 127.0.0.1 signed by it; returns (ca_path, cert_path, key_path)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "LeaveHome test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_path, cert_path, key_path


class ApnsPeer(_Scripted):
    """APNs (token-based) over TLS and HTTP/2 on 127.0.0.1, made with the h2 library."""

    def __init__(self, directory, *, team_id="TEAM123456", key_id="KEY1234567", topic="org.leavehome.app"):
        super().__init__()
        self.team_id, self.key_id, self.topic = team_id, key_id, topic
        signing_key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = signing_key.public_key()
        self.key_path = directory / f"AuthKey_{key_id}.p8"
        self.key_path.write_bytes(
            signing_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.ca_path, cert_path, server_key_path = make_ca_and_server_certificate(directory)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert_path, server_key_path)
        self.tls.set_alpn_protocols(["h2"])
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.alpn = []
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def settings(self):
        """The Django settings that point ApnsTransport at this peer."""
        return {
            "PUSH_APNS_KEY_FILE": str(self.key_path),
            "PUSH_APNS_KEY_ID": self.key_id,
            "PUSH_APNS_TEAM_ID": self.team_id,
            "PUSH_APNS_TOPIC": self.topic,
            "PUSH_APNS_URL": self.url,
            "PUSH_APNS_CA_FILE": str(self.ca_path),
        }

    def _accept(self):
        while not self._closing:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            sock = self.tls.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        with self.lock:
            self.connections += 1
            connection_number = self.connections
            self.alpn.append(sock.selected_alpn_protocol())
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        streams = {}
        try:
            while True:
                data = sock.recv(65535)
                if not data:
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = (dict(event.headers), bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][1].extend(event.data)
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id)
                        self._respond(conn, event.stream_id, headers, bytes(body), connection_number)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                sock.sendall(conn.data_to_send())
        except (OSError, ssl.SSLError):
            pass
        finally:
            sock.close()

    def _respond(self, conn, stream_id, headers, body, connection_number):
        path = headers.get(":path", "")
        token = path.removeprefix("/3/device/")
        received = Received(address=token, status=0, connection=connection_number)
        if headers.get(":method") != "POST" or not path.startswith("/3/device/"):
            received.problems.append(f"{headers.get(':method')} {path}")
        try:
            scheme, _, provider_token = headers.get("authorization", "").partition(" ")
            if scheme != "bearer":
                raise ValueError(f"authorization scheme {scheme!r}")
            if jwt.get_unverified_header(provider_token).get("kid") != self.key_id:
                raise ValueError("kid is not the key's id")
            claims = jwt.decode(
                provider_token, self.public_key, algorithms=["ES256"], issuer=self.team_id, options={"require": ["iat"]}
            )
            if claims["iat"] < time.time() - 3600:
                raise ValueError("provider token older than an hour")
        except Exception as error:
            received.problems.append(f"provider token: {error!r}")
        expected = {"apns-push-type": "background", "apns-priority": "5", "apns-topic": self.topic}
        for name, value in expected.items():
            if headers.get(name) != value:
                received.problems.append(f"{name} is {headers.get(name)!r}")
        try:
            received.content = json.loads(body)
            if received.content.get("aps") != {"content-available": 1}:
                received.problems.append(f"aps is {received.content.get('aps')!r}, not a background push")
        except (ValueError, AttributeError) as error:
            received.problems.append(f"body: {error!r}")
        if received.problems:
            status, answer, answer_headers = 403, {"reason": "InvalidProviderToken"}, None
        else:
            status, answer, answer_headers = self._next_answer(token, (200, None, None))
        received.status = status
        self._record(received)
        response_headers = [(":status", str(status)), ("apns-id", str(uuid.uuid4()))]
        response_headers += [(name.lower(), str(value)) for name, value in (answer_headers or {}).items()]
        payload = json.dumps(answer).encode() if answer is not None else b""
        conn.send_headers(stream_id, response_headers, end_stream=not payload)
        if payload:
            conn.send_data(stream_id, payload, end_stream=True)

    def close(self):
        self._closing = True
        self.listener.close()
