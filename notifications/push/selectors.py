"""Read-only views of push delivery, for the health officials' dashboard (notifications/admin.py)."""

from django.db.models import Count

from notifications.models import PushChannel, PushDelivery


def push_delivery_summary(*, since=None) -> dict:
    """How pushes went: deliveries by status and by kind, and channels by kind and state.

    ``{"deliveries": {status: n}, "deliveries_by_kind": {kind: {status: n}},
    "channels": {kind: {"active": n, "inactive": n}}}``, every status and kind present (0 when
    none). ``since`` (a datetime) counts only deliveries created from then on. Two grouped
    queries; the delivery one reads the whole table, or since's range, which retention keeps
    to a month (deliveries go with their notifications).
    """
    statuses = [status.value for status in PushDelivery.Status]
    kinds = [kind.value for kind in PushChannel.Kind]
    deliveries = PushDelivery.objects.all()
    if since is not None:
        deliveries = deliveries.filter(created_at__gte=since)
    by_kind = {kind: dict.fromkeys(statuses, 0) for kind in kinds}
    for row in deliveries.values("channel__kind", "status").annotate(n=Count("id")):
        by_kind[row["channel__kind"]][row["status"]] = row["n"]
    channels = {kind: {"active": 0, "inactive": 0} for kind in kinds}
    for row in PushChannel.objects.values("kind", "active").annotate(n=Count("id")):
        channels[row["kind"]]["active" if row["active"] else "inactive"] = row["n"]
    return {
        "deliveries": {status: sum(by_kind[kind][status] for kind in kinds) for status in statuses},
        "deliveries_by_kind": by_kind,
        "channels": channels,
    }
