"""Reads for the phone API: a device's notifications, incrementally."""

import datetime as dt

from django.db import models
from django.utils import timezone

from notifications.models import Case, Device, Notification

# How far behind "now" the change cursor stays. A notification's updated_at is set when its
# statement runs, but it becomes visible only when its transaction commits; a phone that
# polled in between and then asked "since now" would never see it. Handing out a cursor
# this far in the past makes the next poll re-read the recent changes (the phone replaces
# items by id, so a repeat is harmless); matching transactions are far shorter than this.
CURSOR_LAG = dt.timedelta(minutes=10)


def notification_cursor_now() -> dt.datetime:
    """The cursor to hand out with an answer read now (see CURSOR_LAG)."""
    return timezone.now() - CURSOR_LAG


def device_notifications(*, device: Device, since: dt.datetime | None = None) -> models.QuerySet[Notification]:
    """The device's notifications changed after ``since`` (all if None), newest first.

    Each row carries ``api_status``: withdrawn if the notification or its case was withdrawn.
    Index: (device_id, -created_at) for the list; a device has a handful of rows.
    """
    rows = Notification.objects.filter(device=device)
    if since is not None:
        rows = rows.filter(updated_at__gt=since)
    withdrawn = models.Q(status=Notification.Status.WITHDRAWN) | models.Q(
        case_visit__case__status=Case.Status.WITHDRAWN
    )
    api_status = models.Case(
        models.When(withdrawn, then=models.Value("withdrawn")),
        default=models.Value("active"),
        output_field=models.CharField(),
    )
    return (
        rows.select_related("case_visit__case__advice_high", "case_visit__case__advice_low", "case_visit__venue")
        .annotate(api_status=api_status)
        .order_by("-created_at", "-id")
    )
