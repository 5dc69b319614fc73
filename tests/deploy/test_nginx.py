"""deploy/nginx.conf, run by a real nginx in front of a real gunicorn.

The site file is used as written; only what must differ on a test machine is rewritten:
ports, certificate and log paths, and where the proxy snippet and static files live.
"""

import json
import os
import re
import shutil
import subprocess
import threading
import time

import httpx
import pytest
from django.contrib.auth import get_user_model

from bench.nginx import certificate_self_signed, site_adapted
from tests.conftest import PROJECT_DIR, TEST_BROKER_URL
from tests.deploy.test_topology import Processes, _free_port, _wait_for, production_env

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PASSWORD = "correct horse battery 9"


def _site_config(tmp_path, *, http_port, https_port, web_port, overrides=None):
    site = site_adapted(tmp_path, http_port=http_port, https_port=https_port, web_port=web_port, overrides=overrides)
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


def _start_site(tmp_path, processes, overrides=None, **extra_env):
    """nginx from deploy/ in front of one gunicorn; returns (https base URL, http port).

    ``overrides`` rewrites more of the site file (old text: new text), e.g. a rate limit.
    """
    certificate_self_signed(tmp_path)
    static = tmp_path / "static" / "leavehome"
    static.mkdir(parents=True)
    shutil.copy(PROJECT_DIR / "leavehome" / "static" / "leavehome" / "site.css", static / "site.css")
    http_port, https_port, web_port = _free_port(), _free_port(), _free_port()
    _site_config(tmp_path, http_port=http_port, https_port=https_port, web_port=web_port, overrides=overrides)

    check = subprocess.run([NGINX, "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr

    # No beat here: the web tier alone, so its health leaves beat out.
    env = production_env(
        "redis://127.0.0.1:6379/14",
        "nginx-test",
        **{"PROXY_COUNT": "1", "GUNICORN_WORKERS": "1", "HEALTHZ_BEAT_MAX_AGE_SECONDS": "0", **extra_env},
    )
    processes.start_gunicorn(web_port, env)
    processes.start("nginx", [NGINX, "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"], dict(os.environ))
    https = f"https://127.0.0.1:{https_port}"
    with _client() as client:
        _wait_for(lambda: client.get(f"{https}/healthz").status_code == 200, "healthz through nginx")
    return https, http_port


def _client(source_address=None, **kwargs):
    """An HTTPS client of the test site, connecting from ``source_address`` (a loopback address)."""
    transport = httpx.HTTPTransport(verify=False, local_address=source_address)  # self-signed
    return httpx.Client(transport=transport, timeout=10, headers={"Host": "127.0.0.1"}, **kwargs)


def test_nginx_terminates_tls_and_proxies_to_gunicorn(tmp_path, processes):
    https, http_port = _start_site(tmp_path, processes)
    client = _client()

    # Plain HTTP: health checks pass through, everything else is sent to TLS.
    assert httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=10).status_code == 200
    redirect = httpx.get(f"http://127.0.0.1:{http_port}/api/v1/config", timeout=10)
    assert redirect.status_code == 301
    assert redirect.headers["Location"].startswith("https://")

    # Over TLS, Django sees X-Forwarded-Proto: https (no redirect loop) and builds https URLs.
    config = client.get(f"{https}/api/v1/config")
    assert config.status_code == 200, config.text
    assert config.json()["protocol"] == "lhs1"
    # One HSTS header, nginx's: Django's copy is hidden by the proxy snippet.
    assert config.headers.get_list("Strict-Transport-Security") == ["max-age=31536000; includeSubDomains; preload"]
    assert "script-src 'self'" in client.get(f"{https}/").headers["Content-Security-Policy"]

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


def _log_in(client, https, username, password):
    """Post the owners' login form as a browser would (CSRF cookie, token and Referer)."""
    page = client.get(f"{https}/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return client.post(
        f"{https}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": "https://127.0.0.1/accounts/login/"},  # the Host nginx forwards
    )


def test_failed_logins_from_one_address_do_not_lock_out_another(tmp_path, processes, settings):
    get_user_model().objects.create_user(username="owner@example.com", email="owner@example.com", password=PASSWORD)
    https, _ = _start_site(tmp_path, processes)
    attacker, victim = _client("127.0.0.2"), _client("127.0.0.3")

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _log_in(attacker, https, "owner@example.com", "guess").status_code == 200
    assert _log_in(attacker, https, "owner@example.com", "guess").status_code == 429
    # The attacker stays locked out, even with the right password or a forged X-Forwarded-For
    # (nginx appends the real address, and only that entry is believed).
    assert _log_in(attacker, https, "owner@example.com", PASSWORD).status_code == 429
    attacker.headers["X-Forwarded-For"] = "198.51.100.7"
    assert _log_in(attacker, https, "owner@example.com", PASSWORD).status_code == 429

    # The owner, from their own address, logs in.
    response = _log_in(victim, https, "owner@example.com", PASSWORD)
    assert response.status_code == 302, processes.log("web")[-2000:]
    assert response.headers["Location"] == "/venues/"


def test_guesses_at_one_username_from_many_addresses_are_slowed_not_the_owner(tmp_path, processes):
    get_user_model().objects.create_user(username="owner@example.com", email="owner@example.com", password=PASSWORD)
    budget, interval = 3, 3
    https, _ = _start_site(
        tmp_path,
        processes,
        CACHE_URL=TEST_BROKER_URL,
        LOGIN_SLOWDOWN_RATE=f"{budget}/hour",
        LOGIN_SLOWDOWN_INTERVAL=str(interval),
    )
    botnet = [_client(f"127.0.0.{n}") for n in range(10, 10 + budget + 1)]
    for bot in botnet:  # one guess each: no address comes near axes' lockout
        assert _log_in(bot, https, "owner@example.com", "guess").status_code == 200
    assert _log_in(botnet[0], https, "owner@example.com", "guess").status_code == 200  # the shared turn

    # Out of turn, from another attacking address: refused unchecked, even the right password.
    refused = _log_in(botnet[1], https, "owner@example.com", PASSWORD)
    assert refused.status_code == 429, processes.log("web")[-2000:]
    assert 1 <= int(refused.headers["Retry-After"]) <= interval
    assert "Please wait" in refused.text
    # The owner, from their own address, is not kept out by the attackers' turns.
    assert _log_in(_client("127.0.0.3"), https, "owner@example.com", PASSWORD).status_code == 302

    time.sleep(int(refused.headers["Retry-After"]) + 0.2)
    assert _log_in(botnet[1], https, "owner@example.com", PASSWORD).status_code == 302


def _assert_api_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert response.headers.get_list("Strict-Transport-Security") == ["max-age=31536000; includeSubDomains; preload"]


def test_errors_nginx_answers_itself_are_in_the_api_error_shape(tmp_path, processes):
    # One request a minute: the burst of 40 is used up by the test's own requests, whatever
    # the machine's speed.
    https, _ = _start_site(tmp_path, processes, overrides={"rate=20r/s": "rate=1r/m"})
    client = _client()

    _assert_api_error(client.post(f"{https}/api/v1/visits", content=b"x" * (2 * 1024 * 1024)), 413, "request_too_large")
    _assert_api_error(client.get(f"{https}/api/v1/config%00"), 400, "bad_request")

    burst = _client("127.0.0.5")
    answers = [burst.get(f"{https}/api/v1/config") for _ in range(45)]
    assert answers[0].status_code == 200
    throttled = [answer for answer in answers if answer.status_code == 429]
    assert throttled, [answer.status_code for answer in answers]
    _assert_api_error(throttled[0], 429, "throttled")
    assert throttled[0].headers["Retry-After"] == "1"

    # Privacy: the refusals of the per-address limit leave no client address in the error log.
    assert "127.0.0.5" not in (tmp_path / "site-error.log").read_text()

    # gunicorn gone: nginx's 502 becomes a 503 the phone knows how to wait out. (A fresh
    # source address: the first one's requests are spent.)
    web = next(process for name, process, _ in processes.running if name == "web")
    web.terminate()
    web.wait(timeout=30)
    down = _client("127.0.0.4").get(f"{https}/api/v1/config")
    _assert_api_error(down, 503, "unavailable")
    assert down.headers["Retry-After"] == "30"


def test_logrotate_keeps_the_sites_logs_at_most_a_week(tmp_path):
    config = (PROJECT_DIR / "deploy" / "logrotate.conf").read_text()
    config = config.replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "leavehome.error.log").write_text("x\n")
    (tmp_path / "logrotate.conf").write_text(config)
    # Debug mode parses and plans the rotation without doing it.
    check = subprocess.run(
        ["/usr/sbin/logrotate", "-d", "-s", str(tmp_path / "state"), str(tmp_path / "logrotate.conf")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert "Rotating logs in daily mode" in check.stderr or "rotating pattern" in check.stderr
    assert re.search(r"^\s*rotate 7$", config, re.M) and re.search(r"^\s*maxage 7$", config, re.M)


def test_uploads_through_nginx_get_no_5xx_while_gunicorn_recycles_its_workers(tmp_path, processes):
    """A worker recycled by max_requests closes, as it exits, its idle kept connections and those
    gthread had accepted but not yet read. A request nginx sent on either got a reset, and
    nginx retries no POST: the upload got a 5xx. Each of the two fixes alone (no kept upstream
    connections; deploy/gunicorn.conf.py's worker) still let tens of the 1,200 fail."""
    https, _ = _start_site(
        tmp_path,
        processes,
        overrides={"rate=20r/s": "rate=100000r/s"},
        GUNICORN_WORKERS="2",
        GUNICORN_MAX_REQUESTS="25",
        GUNICORN_MAX_REQUESTS_JITTER="10",
    )
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def phone():
        with _client() as client:  # kept-alive connections to nginx, as a phone's
            for _ in range(150):
                # Unauthenticated: answered 401 by gunicorn, as quickly as anything it answers.
                status = client.post(f"{https}/api/v1/visits", content=b'{"days": []}').status_code
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=phone) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == {401: 8 * 150}, (statuses, (tmp_path / "site-error.log").read_text()[-2000:])
    recycled = processes.log("web").count("Autorestarting worker")
    assert recycled >= 20, "gunicorn recycled too few workers for the test to mean anything"
