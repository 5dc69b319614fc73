"""Fixed-window counters in the cache, for the pages' costly actions (the API uses DRF's throttles).

A key holds the count of one window; it expires with the window. What is counted (an e-mail
address, a client address) is stored only as a SHA-256, so the cache holds no address in clear.
"""

import hashlib

from django.core.cache import cache


def rate_limit_hit(scope: str, ident: str, *, limit: int, seconds: int) -> bool:
    """Count one action of ``ident`` in ``scope``; True when it is over ``limit`` per ``seconds``."""
    key = f"ratelimit:{scope}:{hashlib.sha256(ident.encode()).hexdigest()}"
    # add() opens the window (a no-op while one is open); incr() is atomic on Redis.
    cache.add(key, 0, timeout=seconds)
    try:
        count = cache.incr(key)
    except ValueError:  # the window closed between the two calls
        cache.set(key, 1, timeout=seconds)
        count = 1
    return count > limit
