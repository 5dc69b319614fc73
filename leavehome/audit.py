"""Recording the audit trail (see AuditEntry)."""

from leavehome.models import AuditEntry


def audit_record(*, actor, action, obj=None, object_type="", object_id="", **detail):
    """Record that ``actor`` did ``action`` to ``obj``; call inside the action's transaction."""
    if obj is not None:
        object_type = object_type or obj._meta.label
        object_id = object_id or str(obj.pk)
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    return AuditEntry.objects.create(
        actor=actor, action=action, object_type=object_type, object_id=str(object_id), detail=detail
    )
