"""Recording heartbeats (see Heartbeat)."""

from django.db import transaction
from django.utils import timezone

from leavehome.models import Heartbeat

BEAT = "beat"


def heartbeat_record(*, name: str = BEAT) -> None:
    """Record that ``name`` ticked now: one upsert, safe to repeat."""
    with transaction.atomic():
        Heartbeat.objects.update_or_create(name=name, defaults={"at": timezone.now()})
