"""deploy/nginx.conf, run by a real nginx in front of a real gunicorn.

The site file is used as written; only what must differ on a test machine is rewritten:
ports, certificate and log paths, and where the proxy snippet and static files live.
"""

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import PROJECT_DIR
from tests.deploy.test_topology import Processes, _free_port, _wait_for, production_env

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _self_signed_certificate(directory: Path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leavehome.example")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("leavehome.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _site_config(tmp_path, *, http_port, https_port, web_port):
    site = (PROJECT_DIR / "deploy" / "nginx.conf").read_text()
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{web_port};",
        "/etc/letsencrypt/live/leavehome.example/fullchain.pem": str(tmp_path / "cert.pem"),
        "/etc/letsencrypt/live/leavehome.example/privkey.pem": str(tmp_path / "key.pem"),
        "/etc/nginx/leavehome_proxy.conf": str(PROJECT_DIR / "deploy" / "nginx-proxy.conf"),
        "/var/log/nginx/leavehome.access.log": str(tmp_path / "access.log"),
        "/srv/leavehome/staticfiles/": str(tmp_path / "static") + "/",
    }
    for old, new in replacements.items():
        assert old in site, f"deploy/nginx.conf no longer contains {old!r}; update this test"
        site = site.replace(old, new)
    directives = "\n".join(line for line in site.splitlines() if not line.lstrip().startswith("#"))
    assert "/etc/" not in directives, "a path of the production machine is left; rewrite it above"
    (tmp_path / "site.conf").write_text(site)
    # As root, nginx's workers would drop to "nobody", who cannot read pytest's private
    # temporary directory; keep them as the user running the test.
    user = "user root;" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(
        f"""
        {user}
        pid {tmp_path}/nginx.pid;
        error_log {tmp_path}/error.log;
        worker_processes 1;
        events {{ worker_connections 64; }}
        http {{
            client_body_temp_path {tmp_path}/body;
            proxy_temp_path {tmp_path}/proxy;
            fastcgi_temp_path {tmp_path}/fastcgi;
            uwsgi_temp_path {tmp_path}/uwsgi;
            scgi_temp_path {tmp_path}/scgi;
            access_log off;
            include {tmp_path}/site.conf;
        }}
        """
    )


@pytest.fixture
def processes(tmp_path):
    running = Processes(tmp_path)
    yield running
    running.stop_all()


def test_nginx_terminates_tls_and_proxies_to_gunicorn(tmp_path, processes):
    _self_signed_certificate(tmp_path)
    static = tmp_path / "static" / "leavehome"
    static.mkdir(parents=True)
    shutil.copy(PROJECT_DIR / "leavehome" / "static" / "leavehome" / "site.css", static / "site.css")
    http_port, https_port, web_port = _free_port(), _free_port(), _free_port()
    _site_config(tmp_path, http_port=http_port, https_port=https_port, web_port=web_port)

    check = subprocess.run([NGINX, "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr

    # No beat here: the web tier alone, so its health leaves beat out.
    env = production_env(
        "redis://127.0.0.1:6379/14",
        "nginx-test",
        PROXY_COUNT="1",
        GUNICORN_WORKERS="1",
        HEALTHZ_BEAT_MAX_AGE_SECONDS="0",
    )
    processes.start_gunicorn(web_port, env)
    processes.start("nginx", [NGINX, "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"], dict(os.environ))
    https = f"https://127.0.0.1:{https_port}"
    client = httpx.Client(verify=False, timeout=10, headers={"Host": "127.0.0.1"})  # noqa: S501 (self-signed)

    _wait_for(lambda: client.get(f"{https}/healthz").status_code == 200, "healthz through nginx")

    # Plain HTTP: health checks pass through, everything else is sent to TLS.
    assert httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=10).status_code == 200
    redirect = httpx.get(f"http://127.0.0.1:{http_port}/api/v1/config", timeout=10)
    assert redirect.status_code == 301
    assert redirect.headers["Location"].startswith("https://")

    # Over TLS, Django sees X-Forwarded-Proto: https (no redirect loop) and builds https URLs.
    config = client.get(f"{https}/api/v1/config")
    assert config.status_code == 200, config.text
    assert config.json()["protocol"] == "lhs1"
    assert "max-age=31536000" in config.headers["Strict-Transport-Security"]

    # Static files come from nginx itself, with a long cache lifetime.
    css = client.get(f"{https}/static/leavehome/site.css")
    assert css.status_code == 200
    assert "max-age=" in css.headers["Cache-Control"]

    # Bodies over the limit are refused by nginx before they reach Python.
    too_big = client.post(f"{https}/api/v1/visits", content=b"x" * (2 * 1024 * 1024))
    assert too_big.status_code == 413

    time.sleep(0.2)
    lines = [json.loads(line) for line in (tmp_path / "access.log").read_text().splitlines()]
    config_line = next(line for line in lines if "/api/v1/config" in line["request"])
    # nginx's request id is the one the app answered with (and logged).
    assert config_line["request_id"] == config.headers["X-Request-ID"]
    assert not any("127.0.0.1" in json.dumps(line) for line in lines), "client addresses must not be logged"
