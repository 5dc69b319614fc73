from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """Who did what, when: every publish, withdraw, import, suspend, key rotation.

    Written by the services that perform the action, in the same transaction, so an action
    and its record exist together or not at all.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, db_index=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_type} {self.object_id}"


class Heartbeat(models.Model):
    """When a periodic job last ran: beat's heartbeat, one row per name.

    Beat enqueues the heartbeat task every HEARTBEAT_SECONDS and a worker records it, so a
    stale row means beat, or every worker, has stopped; /healthz and the metrics read it.
    """

    name = models.CharField(max_length=32, primary_key=True)
    at = models.DateTimeField()

    def __str__(self):
        return f"{self.name} {self.at:%Y-%m-%d %H:%M:%S}"
