"""The client's address as our own proxies saw it: one rule for API throttles and login lockouts.

nginx appends the address it accepted the connection from to ``X-Forwarded-For``
(``$proxy_add_x_forwarded_for``), so with ``PROXY_COUNT`` proxies in front the client is the
``PROXY_COUNT``-th entry from the right; anything further left was written by the client and
proves nothing. This is DRF's ``NUM_PROXIES`` rule, which the throttles already use.

django-ipware was tried for the lockouts and not kept: its ``proxy_count`` expects the last
proxy's own address in the header as well, which nginx does not add, so behind one nginx it
returned no address at all (every attacker and victim sharing one lockout key again).
"""

from rest_framework.throttling import BaseThrottle


def client_address(request) -> str | None:
    """The address of the client that connected to the outermost of our proxies."""
    return BaseThrottle().get_ident(request)
