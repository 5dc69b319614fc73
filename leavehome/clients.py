"""The client's address for django-axes, by the throttles' rule (leavehome/ratelimit.py).

axes asks for a callable of the request (``AXES_CLIENT_IP_CALLABLE``). django-ipware was tried
and not kept: its ``proxy_count`` expects the last proxy's own address in X-Forwarded-For as
well, which nginx's ``$proxy_add_x_forwarded_for`` does not add, so behind one nginx it
returned no address at all (every attacker and victim sharing one lockout key again).
"""

from leavehome.ratelimit import client_address


def request_client_address(request) -> str:
    """The address of the client that connected to the outermost of our PROXY_COUNT proxies."""
    return client_address(request.META)
