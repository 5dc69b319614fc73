from django.apps import AppConfig


class LeaveHomeConfig(AppConfig):
    """The project package is also an app: the audit trail, health check and demo data."""

    name = "leavehome"
    verbose_name = "LeaveHome"

    def ready(self):
        from leavehome import checks  # noqa: F401 (registers the deployment checks)
