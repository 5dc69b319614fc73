"""Fixed-window request counters: one pipelined Redis round trip for every limit of a request.

DRF's throttles keep a list of timestamps per client and pickle it back and forth on every
request (two round trips and a growing blob per throttle); on the busiest endpoint that cost
more than storing the upload. Here each limit is one integer per window, ``INCR`` + ``EXPIRE
NX`` in a single pipeline for all the request's limits. A fixed window lets a client send up
to twice the rate across a window boundary, which is fine for limits that only slow abuse.

Counters live in the shared cache (``CACHE_URL``), never beside anything a phone uploads, and
expire with their window. Without ``CACHE_URL`` (the embedded default, one process) they are
kept in Django's local-memory cache.

When the cache cannot be reached the limits are not enforced: requests are served, and a
warning is logged once a minute per process. The limits only slow abuse; an outage of the
cache must not become an outage of the API (tests/deploy/test_faults.py).
"""

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache as django_cache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)
_WARN_EVERY_SECONDS = 60
_last_warning = [0.0]

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Limit:
    """At most ``rate`` requests (``"120/hour"``, DRF's spelling) of ``scope`` by ``ident``; None: no limit."""

    scope: str
    ident: str
    rate: str | None

    def parsed(self) -> tuple[int, int]:
        count, period = self.rate.split("/")
        return int(count), _PERIODS[period.strip()[0]]


_clients: dict = {}
_clients_lock = threading.Lock()


def _redis(url: str):
    """One client (and connection pool) per process, made once even when threads race for it.

    A second client made by a racing thread would replace the first in a cache, and the first,
    garbage-collected, closes its pool's connections under the thread still using them
    ("I/O operation on closed file" in gthread workers just after they start).
    """
    client = _clients.get(url)
    if client is None:
        import redis  # installed with celery[redis]; only deployments with CACHE_URL use it

        with _clients_lock:
            client = _clients.get(url)
            if client is None:
                client = _clients[url] = redis.Redis.from_url(url)
    return client


def rate_limits_unenforced(error: Exception) -> None:
    """Log (at most once a minute) that the cache is unreachable and limits are not enforced."""
    now = time.monotonic()
    if now - _last_warning[0] >= _WARN_EVERY_SECONDS:
        _last_warning[0] = now
        logger.warning("rate limits not enforced: the cache is unreachable (%s)", error)


def _key(limit: Limit, window: int) -> str:
    return f"lh:rate:{limit.scope}:{limit.ident}:{window}"


def rate_limits_hit(limits: list[Limit], *, now: float | None = None) -> int | None:
    """Count this request against each limit; returns the seconds to wait if one is exceeded, else None.

    Every limit is counted, refused or not, so a client that keeps knocking gains nothing.
    """
    now = time.time() if now is None else now
    windows = []
    for limit in limits:
        if limit.rate is None:
            continue
        allowed, seconds = limit.parsed()
        window = int(now // seconds)
        windows.append((limit, allowed, window, int((window + 1) * seconds - now) + 1))
    if not windows:
        return None
    if settings.CACHE_URL:
        pipe = _redis(settings.CACHE_URL).pipeline(transaction=False)
        for limit, _allowed, window, remaining in windows:
            pipe.incr(_key(limit, window))
            pipe.expire(_key(limit, window), remaining, nx=True)
        try:
            counts = pipe.execute()[::2]
        except RedisError as error:
            rate_limits_unenforced(error)
            return None
    else:
        counts = []
        for limit, _allowed, window, remaining in windows:
            key = _key(limit, window)
            django_cache.add(key, 0, remaining)
            counts.append(django_cache.incr(key))
    waits = [
        remaining
        for (_limit, allowed, _window, remaining), count in zip(windows, counts, strict=True)
        if count > allowed
    ]
    return max(waits) if waits else None


def client_address(meta) -> str:
    """The client's address as the throttles see it: behind PROXY_COUNT proxies, the one they saw.

    The same rule as DRF's throttles (NUM_PROXIES), so every limit keys a client alike.
    """
    forwarded, remote = meta.get("HTTP_X_FORWARDED_FOR"), meta.get("REMOTE_ADDR", "")
    proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0
    if proxies == 0 or not forwarded:
        return remote
    addresses = forwarded.split(",")
    return addresses[-min(proxies, len(addresses))].strip()
