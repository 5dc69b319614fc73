"""The per-username login slow-down (leavehome/login_slowdown.py), in the cache as deployed (Redis)
and as embedded (local memory), through the owners' and the staff's login forms."""

import time

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from leavehome import ratelimit
from tests.conftest import TEST_BROKER_URL

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery 9"
BUDGET = 5  # LOGIN_SLOWDOWN_RATE below: failures of one username before it is slowed
INTERVAL = 30  # LOGIN_SLOWDOWN_INTERVAL below, seconds; a test that waits it out shortens it


@pytest.fixture(params=["redis", "locmem"])
def slowdown(request, settings):
    if request.param == "redis":
        settings.CACHE_URL = TEST_BROKER_URL
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": TEST_BROKER_URL}
        }
        ratelimit._clients.clear()
        cache.clear()
    settings.LOGIN_SLOWDOWN_RATE = f"{BUDGET}/hour"
    settings.LOGIN_SLOWDOWN_INTERVAL = INTERVAL
    yield
    ratelimit._clients.clear()


@pytest.fixture
def owner(db):
    email = "owner@example.com"
    return get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)


def _log_in(address, password, username="owner@example.com", **extra):
    return Client(REMOTE_ADDR=address).post("/accounts/login/", {"username": username, "password": password}, **extra)


def _botnet_slows(username="owner@example.com"):
    """One wrong guess from each of BUDGET + 1 addresses: none of them is locked out by axes."""
    for n in range(BUDGET + 1):
        response = _log_in(f"203.0.113.{n}", "guess", username)
        assert response.status_code == 200 and "Please enter a correct" in response.content.decode()


def _failures() -> int:
    return sum(AccessAttempt.objects.values_list("failures_since_start", flat=True))


def test_guesses_from_many_addresses_are_slowed_and_out_of_turn_the_password_is_not_checked(slowdown, owner, settings):
    settings.LOGIN_SLOWDOWN_INTERVAL = interval = 2
    _botnet_slows()
    # Slowed: one check per interval between every address that failed. This one takes the turn.
    assert _log_in("203.0.113.1", "guess").status_code == 200
    failures = _failures()

    # Out of turn even the right password is refused, with the wait, and nothing is checked:
    # a wrong one is refused alike and counts as no failure for axes.
    for password in (PASSWORD, "guess", PASSWORD):
        response = _log_in("203.0.113.2", password)
        assert response.status_code == 429
        wait = response["Retry-After"]
        assert wait in ("1", "2")
        assert f"Please wait {wait} second{'s' if wait == '2' else ''} and try again." in response.content.decode()
        assert "_auth_user_id" not in response.client.session
    assert _failures() == failures

    # Refusals are not failures, so they never lock anyone out: after the interval the right
    # password is accepted from that address.
    time.sleep(interval + 0.1)
    response = _log_in("203.0.113.2", PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/venues/"


def test_the_rightful_user_from_their_own_address_is_not_kept_out_by_the_attackers_turns(slowdown, owner):
    _botnet_slows()
    assert _log_in("203.0.113.1", "guess").status_code == 200  # the attacker holds the shared turn
    # From an address that has not failed, the owner has a lane of their own.
    response = _log_in("198.51.100.20", PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/venues/"


def test_the_slow_down_keeps_one_username_and_not_the_others(slowdown, owner):
    get_user_model().objects.create_user(username="other@example.com", email="other@example.com", password=PASSWORD)
    _botnet_slows()
    assert _log_in("203.0.113.1", "guess").status_code == 200
    # The same attacking address, another account: checked at once, wrong or right.
    assert _log_in("203.0.113.2", "guess", "other@example.com").status_code == 200
    assert _log_in("203.0.113.2", PASSWORD, "other@example.com").status_code == 302
    assert _log_in("203.0.113.2", PASSWORD).status_code == 429


def test_below_the_budget_nothing_is_slowed(slowdown, owner):
    for n in range(BUDGET):
        assert _log_in(f"203.0.113.{n}", "guess").status_code == 200
    assert _log_in("203.0.113.0", PASSWORD).status_code == 302


def test_every_spelling_of_a_username_shares_one_budget(slowdown, owner):
    for n in range(BUDGET + 1):
        _log_in(f"203.0.113.{n}", "guess", "Owner@Example.com" if n % 2 else "owner@example.com")
    _log_in("203.0.113.1", "guess")
    assert _log_in("203.0.113.2", PASSWORD, "OWNER@example.com").status_code == 429


def test_the_wait_is_said_in_traditional_chinese(slowdown, owner):
    _botnet_slows()
    _log_in("203.0.113.1", "guess")
    response = _log_in("203.0.113.2", PASSWORD, HTTP_ACCEPT_LANGUAGE="zh-hant")
    assert response.status_code == 429
    assert "請等候 30 秒後再試" in response.content.decode()


def test_behind_a_proxy_the_addresses_are_the_ones_it_saw(slowdown, owner, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = "127.0.0.1"
    for n in range(BUDGET + 1):
        assert _log_in(proxy, "guess", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code == 200
    _log_in(proxy, "guess", HTTP_X_FORWARDED_FOR="203.0.113.1")
    assert _log_in(proxy, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.2").status_code == 429
    # A client writing its own X-Forwarded-For entry is still known by the one the proxy added.
    forged = _log_in(proxy, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.20, 203.0.113.2")
    assert forged.status_code == 429
    assert _log_in(proxy, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.20").status_code == 302


def test_staff_logins_to_the_admin_are_slowed_too(slowdown):
    get_user_model().objects.create_user(username="official", password=PASSWORD, is_staff=True)

    def admin_log_in(address, password):
        return Client(REMOTE_ADDR=address).post(
            "/admin/login/?next=/admin/", {"username": "official", "password": password}
        )

    for n in range(BUDGET + 1):
        assert admin_log_in(f"203.0.113.{n}", "guess").status_code == 200
    admin_log_in("203.0.113.1", "guess")
    refused = admin_log_in("203.0.113.2", PASSWORD)
    assert refused.status_code == 429 and "Please wait 30 seconds" in refused.content.decode()
    assert admin_log_in("198.51.100.20", PASSWORD).status_code == 302


def test_the_two_factor_admin_form_takes_turns(slowdown, rf):
    from leavehome.admin import LeaveHomeOTPAdminSite

    get_user_model().objects.create_user(username="official", password=PASSWORD, is_staff=True)
    for n in range(BUDGET + 1):
        Client(REMOTE_ADDR=f"203.0.113.{n}").post("/admin/login/", {"username": "official", "password": "guess"})
    Client(REMOTE_ADDR="203.0.113.1").post("/admin/login/", {"username": "official", "password": "guess"})
    request = rf.post("/admin/login/", REMOTE_ADDR="203.0.113.2")
    form = LeaveHomeOTPAdminSite.login_form(request, data={"username": "official", "password": PASSWORD})
    assert not form.is_valid()
    assert form.has_error("__all__", code="login_slowed")
    assert request.login_slowdown_wait == INTERVAL


def test_with_the_cache_down_logins_are_not_slowed_and_axes_still_locks_each_address(owner, settings):
    down = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.CACHE_URL = down
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": down}}
    settings.LOGIN_SLOWDOWN_RATE = f"{BUDGET}/hour"
    ratelimit._clients.clear()
    try:
        for n in range(2 * BUDGET):
            assert _log_in(f"203.0.113.{n}", "guess").status_code == 200
        assert _log_in("203.0.113.1", PASSWORD).status_code == 302  # fails open
        for _ in range(settings.AXES_FAILURE_LIMIT):
            _log_in("198.51.100.9", "guess")
        locked = _log_in("198.51.100.9", PASSWORD)
        assert locked.status_code == 429 and "Too many failed log-ins" in locked.content.decode()
    finally:
        ratelimit._clients.clear()
