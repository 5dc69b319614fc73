"""deploy/nginx.conf run by a real nginx in front of the bench's gunicorn (the soak's front).

The site file is used as written; only what must differ on this machine is rewritten, as the
deployment tests do (tests/deploy/test_nginx.py): the listen ports (loopback only), the
upstream's port, the certificate (a self-signed one made here) and log paths, and where the
proxy snippet and static files live. The per-address request limit stays as deployed: the
load comes from many loopback addresses (bench/openloop.py ``--sources``), as phones come
from many addresses.
"""

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import PROJECT_DIR
from bench.processes import ServerProcess, free_port, wait_http_ok

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def certificate_self_signed(directory: Path) -> None:
    """cert.pem and key.pem for leavehome.example in ``directory``, valid for two days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leavehome.example")])
    now = dt.datetime.now(dt.UTC)
    builder = x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
    certificate = (
        builder.serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("leavehome.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pkcs8 = serialization.PrivateFormat.PKCS8
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())
    )


def site_adapted(directory: Path, *, http_port: int, https_port: int, web_port: int, overrides=None) -> str:
    """deploy/nginx.conf with this machine's ports and paths (and ``overrides``, old text: new
    text, first); fails if the file no longer has what is rewritten."""
    site = (PROJECT_DIR / "deploy" / "nginx.conf").read_text()
    rewrites = {
        **(overrides or {}),
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{web_port};",
        "/etc/letsencrypt/live/leavehome.example/fullchain.pem": str(directory / "cert.pem"),
        "/etc/letsencrypt/live/leavehome.example/privkey.pem": str(directory / "key.pem"),
        "/etc/nginx/leavehome_proxy.conf": str(PROJECT_DIR / "deploy" / "nginx-proxy.conf"),
        "/var/log/nginx/leavehome.access.log": str(directory / "access.log"),
        "/var/log/nginx/leavehome.error.log": str(directory / "site-error.log"),
        "/srv/leavehome/staticfiles/": str(directory / "static") + "/",
    }
    for old, new in rewrites.items():
        if old not in site:
            raise RuntimeError(f"deploy/nginx.conf no longer contains {old!r}; update bench/nginx.py")
        site = site.replace(old, new)
    return site


# Debian's main nginx.conf, reduced to what the site needs: one worker per core, and
# everything nginx writes kept in the bench's own directory.
MAIN_CONFIG = """
{user}
pid {directory}/nginx.pid;
error_log {directory}/error.log;
worker_processes auto;
events {{ worker_connections 768; }}
http {{
    sendfile on;
    tcp_nopush on;
    types {{ text/css css; application/javascript js; image/png png; }}
    default_type application/octet-stream;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    access_log off;
    include {directory}/site.conf;
}}
"""


@dataclass
class Nginx:
    server: ServerProcess
    https_port: int
    http_port: int
    directory: Path

    @property
    def pid(self) -> int:
        return self.server.pid

    def stop(self) -> None:
        """Stop nginx; its error logs are kept beside the other servers' logs, the rest removed."""
        self.server.stop()
        kept = Path(os.environ.get("BENCH_LOG_DIR", tempfile.gettempdir())) / "lh-bench-logs"
        kept.mkdir(parents=True, exist_ok=True)
        for name in ("error.log", "site-error.log"):
            if (self.directory / name).exists():
                shutil.copy(self.directory / name, kept / f"nginx-{self.directory.name}-{name}")
        shutil.rmtree(self.directory, ignore_errors=True)

    def error_lines(self) -> list[str]:
        """The lines of the site's error log (upstream failures behind a 502/503/504)."""
        try:
            return (self.directory / "site-error.log").read_text(errors="replace").splitlines()
        except OSError:
            return []


def nginx_start(web_port: int) -> Nginx:
    """nginx with deploy/nginx.conf in front of gunicorn on ``web_port``; returns once /healthz answers."""
    directory = Path(tempfile.mkdtemp(prefix="lh-bench-nginx-"))
    (directory / "static").mkdir()
    certificate_self_signed(directory)
    http_port, https_port = free_port(), free_port()
    site = site_adapted(directory, http_port=http_port, https_port=https_port, web_port=web_port)
    (directory / "site.conf").write_text(site)
    # As root, nginx's workers would drop to "nobody", who cannot read the private temporary directory.
    user = "user root;" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(MAIN_CONFIG.format(user=user, directory=directory))
    config = str(directory / "nginx.conf")
    tested = subprocess.run([NGINX, "-t", "-c", config], capture_output=True, text=True)
    if tested.returncode != 0:
        raise RuntimeError(f"nginx -t refused the adapted deploy/nginx.conf:\n{tested.stderr}")
    log_path = directory / "stderr.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [NGINX, "-c", config, "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    front = Nginx(ServerProcess("nginx", process, log_path), https_port, http_port, directory)
    try:
        wait_http_ok(front.server, http_port)  # plain HTTP serves /healthz only, through to gunicorn
    except BaseException:
        front.stop()
        raise
    return front
