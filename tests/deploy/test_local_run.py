"""docs/operations.md's local trial, followed literally: its shell blocks run as written, from a
fresh database, then an official logs in to the admin with two-factor login and a venue owner
signs up and follows the e-mailed verification link.

Only the variables the doc invites to change are set (a directory, port, database and Redis
databases of this test's own); everything else is the doc's text.
"""

import base64
import os
import re
import signal
import subprocess
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from django_otp.oath import totp

from tests.conftest import PROJECT_DIR, TEST_BROKER_URL
from tests.deploy.test_topology import _free_port, _wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.broker, pytest.mark.slow]

DOC = PROJECT_DIR / "docs" / "operations.md"
BLOCK = re.compile(r"```sh\n(# local run: ([^\n]*)\n.*?)```", re.S)
OFFICIAL_PASSWORD = "tsim-sha-tsui-clinic-2026"
OWNER_PASSWORD = "lucky-noodle-house-88"


def _blocks():
    blocks = {title.split(",")[0].split(" (")[0]: text for text, title in BLOCK.findall(DOC.read_text())}
    assert set(blocks) == {"settings", "start web", "first day"}, list(blocks)
    return blocks


def _csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


@pytest.fixture
def trial(tmp_path):
    """The doc's variables for this test, and the processes and database it leaves behind."""
    variables = {
        "LOCAL_DIR": str(tmp_path / "local"),
        "PORT": str(_free_port()),
        "DB": f"leavehome_local_{uuid.uuid4().hex[:8]}",
        "BROKER": TEST_BROKER_URL,
        "CACHE": TEST_BROKER_URL,
    }
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)), **variables}
    started = []
    yield env, started
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", variables["DB"]], check=False)


def test_the_documented_local_run_reaches_an_official_and_a_verified_owner(trial):
    env, started = trial
    blocks = _blocks()
    run = {"cwd": PROJECT_DIR, "env": env, "capture_output": True, "text": True, "timeout": 600}

    settings_run = subprocess.run(["bash", "-e", "-c", blocks["settings"]], **run)
    assert settings_run.returncode == 0, settings_run.stdout[-2000:] + settings_run.stderr[-2000:]
    start = subprocess.Popen(
        ["bash", "-e", "-c", blocks["start web"]], cwd=PROJECT_DIR, env=env, start_new_session=True
    )
    started.append(start)
    base = f"http://127.0.0.1:{env['PORT']}"
    local = Path(env["LOCAL_DIR"])
    _wait_for(lambda: httpx.get(f"{base}/healthz", timeout=5).status_code == 200, "healthz (web, worker and beat)", 120)
    assert "INSECURE_PLAIN_HTTP=1" in (local / "web.log").read_text()  # the loud warning

    first_day = subprocess.run(["bash", "-e", "-c", blocks["first day"]], input=OFFICIAL_PASSWORD + "\n", **run)
    assert first_day.returncode == 0, first_day.stdout[-2000:] + first_day.stderr[-2000:]
    otpauth = re.search(r"otpauth://\S+", first_day.stdout).group(0)
    secret = parse_qs(urlparse(otpauth).query)["secret"][0]
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))

    # The official logs in to the admin with the authenticator's code. django-otp asks which
    # device the code is from once the password is right: the second answer names it.
    official = httpx.Client(base_url=base, timeout=30)
    credentials = {"username": "ada", "password": OFFICIAL_PASSWORD, "next": "/admin/"}
    page = official.get("/admin/login/")
    for _ in range(2):
        device = re.search(r'<option value="(otp_totp\.totpdevice/\d+)"', page.text)
        form = {**credentials, "csrfmiddlewaretoken": _csrf(page), "otp_token": f"{totp(key):06d}"}
        page = official.post("/admin/login/?next=/admin/", data={**form, "otp_device": device[1] if device else ""})
        if page.status_code == 302:
            break
    assert page.status_code == 302 and page.headers["Location"] == "/admin/", re.findall(
        r"error[^>]*>([^<]+)", page.text
    )
    cases = official.get("/admin/notifications/case/")
    assert cases.status_code == 200 and "ada" in cases.text

    # A venue owner signs up; the mailed link (from SITE_URL) verifies and logs them in.
    owner = httpx.Client(base_url=base, timeout=30)
    signup = owner.get("/accounts/signup/")
    done = owner.post(
        "/accounts/signup/",
        data={
            "csrfmiddlewaretoken": _csrf(signup),
            "email": "owner@noodles.example",
            "full_name": "Ada Chan",
            "password1": OWNER_PASSWORD,
            "password2": OWNER_PASSWORD,
        },
    )
    assert done.status_code == 200 and "owner@noodles.example" in done.text
    mails = sorted((local / "sent-mail").iterdir(), key=lambda path: path.stat().st_mtime)
    link = re.search(rf"{re.escape(base)}/accounts/verify/\S+", mails[-1].read_text()).group(0)
    verified = owner.get(link, follow_redirects=True)
    assert verified.status_code == 200 and verified.url.path == "/venues/"
    assert owner.get("/venues/").status_code == 200  # still logged in
