"""Rate limits of the phone API's DRF endpoints, per device and per IP (scopes in settings.REST_FRAMEWORK).

The visit upload counts the same scopes' rates with leavehome/ratelimit.py, in one Redis
round trip (notifications/api/uploads.py).

Counters live in the shared cache, never beside visit tokens, and expire with their window:
the IP address is used to slow abuse, not recorded with anything a phone uploads. With the
cache unreachable they let requests through, as leavehome/ratelimit.py does.
"""

from redis.exceptions import RedisError
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from leavehome.ratelimit import rate_limits_unenforced


class _ScopeThrottle(SimpleRateThrottle):
    """A throttle whose rate is read from the settings on each request.

    DRF's own classes copy the rates once at import; reading them late lets a deployment's
    settings (and tests' override_settings) take effect without a restart of the module.
    """

    by_device = False

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except RedisError as error:
            rate_limits_unenforced(error)
            return True

    def get_cache_key(self, request, view):
        if self.by_device:
            device_id = getattr(request.user, "pk", None)
            if device_id is None:
                return None
            ident = str(device_id)
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class DeviceRegisterIPThrottle(_ScopeThrottle):
    scope = "device_register_ip"


class DeviceReadThrottle(_ScopeThrottle):
    scope = "device_read"
    by_device = True


class CaseUploadIPThrottle(_ScopeThrottle):
    scope = "case_upload_ip"


class CaseUploadGlobalThrottle(_ScopeThrottle):
    """One counter for every address together: a ceiling that guessing codes from many cannot pass."""

    scope = "case_upload_global"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": "all"}
