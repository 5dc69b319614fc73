"""leavehome.ratelimit against a real Redis: fixed windows, Retry-After, and threads racing at start."""

import threading
import uuid

import pytest

from leavehome import ratelimit
from tests.conftest import TEST_BROKER_URL

pytestmark = pytest.mark.broker  # a real Redis, as in production (CACHE_URL)


@pytest.fixture
def redis_cache(settings):
    settings.CACHE_URL = TEST_BROKER_URL
    ratelimit._clients.clear()
    yield
    ratelimit._clients.clear()


def test_a_window_allows_its_rate_then_says_how_long_to_wait(redis_cache):
    limit = ratelimit.Limit(f"test-{uuid.uuid4().hex}", "client", "3/hour")
    now = 7200.0 + 600  # ten minutes into an hour window
    assert [ratelimit.rate_limits_hit([limit], now=now) for _ in range(3)] == [None, None, None]
    assert ratelimit.rate_limits_hit([limit], now=now) == 3001  # the rest of the window, rounded up
    assert ratelimit.rate_limits_hit([limit], now=now + 3000) is None  # the next window starts afresh


def test_the_strictest_of_several_limits_decides(redis_cache):
    scope = f"test-{uuid.uuid4().hex}"
    loose, strict = ratelimit.Limit(scope, "a", "100/hour"), ratelimit.Limit(scope, "b", "1/minute")
    assert ratelimit.rate_limits_hit([loose, strict], now=60.0) is None
    assert ratelimit.rate_limits_hit([loose, strict], now=60.0) == 61


def test_threads_racing_for_the_first_client_all_succeed(redis_cache):
    errors = []
    limit = ratelimit.Limit(f"test-{uuid.uuid4().hex}", "client", "100000/hour")

    def hit():
        try:
            for _ in range(20):
                ratelimit.rate_limits_hit([limit])
        except Exception as error:  # reported below: a second client closing the first's pool
            errors.append(error)

    for _ in range(30):  # a gthread worker just started, again and again
        ratelimit._clients.clear()
        threads = [threading.Thread(target=hit) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
