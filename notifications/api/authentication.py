"""Device authentication: ``Authorization: Bearer {SECRET}`` (PROTOCOL §4)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from notifications.devices import device_authenticate, device_seen
from notifications.models import Device


class DeviceAuthentication(authentication.BaseAuthentication):
    """Resolves the bearer secret to a Device, which becomes ``request.user``.

    A missing header lets the permission answer 401 (DRF uses ``authenticate_header`` to pick
    401 over 403); a header that names no device is refused here, also with 401.
    """

    keyword = b"bearer"

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer' and the device secret.")
        try:
            secret = parts[1].decode("ascii")
        except UnicodeDecodeError:
            secret = None
        device = device_authenticate(secret) if secret else None
        if device is None:
            raise exceptions.AuthenticationFailed("Unknown device secret.")
        device_seen(device)
        return device, None

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class IsDevice(permissions.BasePermission):
    """The request carries a valid device secret."""

    def has_permission(self, request, view):
        return isinstance(request.user, Device)


class DeviceAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes the device secret in the OpenAPI document as an HTTP bearer scheme."""

    target_class = DeviceAuthentication
    name = "deviceSecret"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The device secret returned once by POST /api/v1/devices.",
        }
