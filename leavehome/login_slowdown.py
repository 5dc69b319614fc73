"""A per-username slow-down of password guessing across every client address.

django-axes locks a username out per client address (``AXES_LOCKOUT_PARAMETERS``), so failures
from an attacker's address never lock the rightful user out from theirs; but an attacker with
many addresses gets ``AXES_FAILURE_LIMIT`` guesses from each of them. Here every failed login is
also counted per username over all addresses, in the fixed windows of leavehome/ratelimit.py.
Past ``LOGIN_SLOWDOWN_RATE`` (20 an hour) the username is *slowed* until a whole period (the
rate's hour) has passed without a failure: a password is checked only in turn, at most once
per ``LOGIN_SLOWDOWN_INTERVAL`` seconds (10) in each lane:

- the shared lane, for every address that has failed to log in as that username in the last
  period: one check per interval between them all, however many addresses the attacker has;
- an address of its own, for an address with no such failure (the rightful user, from their
  own address): one check per interval for that address alone. The attacker cannot take its
  turns, so the rightful user waits at most one interval and is never locked out by them.

An attempt out of turn is refused *before* the password is checked, so its answer says nothing
about the password, and it is not a failure (neither here nor for axes): waiting never makes
the wait longer. The form says how many seconds to wait; the response is 429 with
``Retry-After`` (``login_slowdown_middleware``). Every address's first guess in a period still
goes through its own lane, then it joins the shared one; together with axes' per-address
lockout that bounds a botnet to about one guess per address and period plus one per interval,
instead of ``AXES_FAILURE_LIMIT`` per address per cool-off.

The cache holds no username and no address in clear: keys are keyed hashes (HMAC with
``SECRET_KEY``) of the normalised username and of (username, address), each expiring at most
one period after the last failure (an interval for a turn). When the cache cannot be reached
the slow-down is not applied, as the rate limits are not: logins go on, with axes (in
PostgreSQL) still locking each address out after ``AXES_FAILURE_LIMIT`` failures.
"""

import math
import time
import unicodedata

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.dispatch import receiver
from django.utils.crypto import salted_hmac
from django.utils.translation import ngettext
from redis.exceptions import RedisError

from leavehome.ratelimit import Limit, client_address, rate_limits_hit, rate_limits_unenforced

_SALT = "leavehome.login_slowdown"


def _username_normalised(username) -> str:
    # Staff usernames are case-sensitive to Django, owners' e-mails already lower-cased: one
    # budget for every spelling of a name costs the rightful user nothing.
    return unicodedata.normalize("NFKC", str(username)).strip().casefold()


def _digests(request, username) -> tuple[str, str]:
    """Keyed hashes of the username and of (username, client address): what the keys hold."""
    name = _username_normalised(username)
    user = salted_hmac(_SALT, name).hexdigest()[:32]
    pair = salted_hmac(_SALT, f"{name}\0{client_address(request.META)}").hexdigest()[:32]
    return user, pair


def _failure_limit(user: str) -> Limit:
    return Limit("login_failures", user, settings.LOGIN_SLOWDOWN_RATE)


def login_turn_take(request, username, *, now: float | None = None) -> int | None:
    """Take this attempt's turn to have its password checked; the seconds to wait if it has none.

    None (check the password) unless the username is slowed and this attempt's lane had a
    check less than ``LOGIN_SLOWDOWN_INTERVAL`` seconds ago.
    """
    now = time.time() if now is None else now
    user, pair = _digests(request, username)
    slowed, failed = f"lh:login:slowed:{user}", f"lh:login:failed:{pair}"
    interval = settings.LOGIN_SLOWDOWN_INTERVAL
    try:
        flags = cache.get_many([slowed, failed])
        if slowed not in flags:
            return None
        turn = f"lh:login:turn:shared:{user}" if failed in flags else f"lh:login:turn:own:{pair}"
        # add() is atomic (SET NX): of many attempts racing for a free turn, one gets it.
        if cache.add(turn, now + interval, interval):
            return None
        next_turn = cache.get(turn)
    except RedisError as error:
        rate_limits_unenforced(error)
        return None
    if next_turn is None:  # the turn expired between add() and get(): the next one is free
        return 1
    return max(1, math.ceil(next_turn - now))


def login_failure_record(request, username, *, now: float | None = None) -> None:
    """Count a failed password check of ``username`` from this request's client address."""
    user, pair = _digests(request, username)
    limit = _failure_limit(user)
    period = limit.parsed()[1]
    over = rate_limits_hit([limit], now=now) is not None
    marks = {f"lh:login:failed:{pair}": 1}
    if over:
        # Kept for a whole period after the last failure, not to the window's end: a new
        # window brings no fresh unslowed guesses while the guessing goes on.
        marks[f"lh:login:slowed:{user}"] = 1
    try:
        cache.set_many(marks, period)
    except RedisError as error:
        rate_limits_unenforced(error)


@receiver(user_login_failed, dispatch_uid="leavehome.login_slowdown")
def _login_failed(sender, credentials, request=None, **kwargs):
    # Every failure authenticate() reports, whichever form or backend asked: owners' and
    # staff's logins alike (a refusal by axes' lockout too; it only makes the slow-down sooner).
    username = credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username")
    if request is not None and username:
        login_failure_record(request, username)


class LoginSlowdownFormMixin:
    """For an ``AuthenticationForm``: no password check out of turn (``login_turn_take``)."""

    def clean(self):
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if username and password and self.request is not None:
            wait = login_turn_take(self.request, username)
            if wait is not None:
                self.request.login_slowdown_wait = wait
                raise ValidationError(
                    ngettext(
                        "There were too many failed log-ins to this account. "
                        "Please wait %(seconds)d second and try again.",
                        "There were too many failed log-ins to this account. "
                        "Please wait %(seconds)d seconds and try again.",
                        wait,
                    )
                    % {"seconds": wait},
                    code="login_slowed",
                )
        return super().clean()


def login_slowdown_middleware(get_response):
    """A login form refused out of turn answers 429 with ``Retry-After`` (the form says why)."""

    def middleware(request):
        response = get_response(request)
        wait = getattr(request, "login_slowdown_wait", None)
        if wait is not None and response.status_code == 200:
            response.status_code = 429
            response["Retry-After"] = str(wait)
        return response

    return middleware
