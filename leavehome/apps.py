import logging

from django.apps import AppConfig


class LeaveHomeConfig(AppConfig):
    """The project package is also an app: the audit trail, health check and demo data."""

    name = "leavehome"
    verbose_name = "LeaveHome"

    def ready(self):
        from django.conf import settings

        from leavehome import (
            checks,  # noqa: F401 (registers the deployment checks)
            login_slowdown,  # noqa: F401 (counts failed logins)
        )

        if settings.INSECURE_PLAIN_HTTP and not settings.DEBUG:
            logging.getLogger("leavehome").warning(
                "INSECURE_PLAIN_HTTP=1: served over plain HTTP, cookies readable on the network. "
                "A local trial only, never a deployment."
            )
