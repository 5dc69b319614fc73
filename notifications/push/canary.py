"""The push canary: a test push through each configured provider to the operators' own devices.

A push provider can fail quietly for months (Japan's COCOA did not deliver on Android for
about four) while phones still poll. So operators keep a phone or browser per provider with
the app installed and list its device id in PUSH_CANARY_DEVICES; beat has a worker send each
one a content-free test push every PUSH_CANARY_SECONDS, and every outcome is counted in the
``leavehome_push_canary_total`` metric by provider and status, which an alert watches
(deploy/prometheus/alerts.yml). A provider that is configured but has no canary device is
counted as ``no_canary``, so a forgotten canary is visible too.
"""

import logging
import uuid

from django.conf import settings

from leavehome.metrics import CANARY
from notifications.models import Device, PushChannel
from notifications.push.delivery import PushTestOutcome, _transport_make, push_test
from notifications.push.transports import TransportDisabled

logger = logging.getLogger(__name__)


def _configured_kinds() -> set[str]:
    kinds = set()
    for kind in PushChannel.Kind.values:
        transport = _transport_make(kind)
        if not isinstance(transport, TransportDisabled):
            kinds.add(kind)
            transport.close()
    return kinds


def push_canary_send() -> dict[str, PushTestOutcome]:
    """Send the canary pushes; {device id: outcome}. Each outcome is counted as a metric."""
    outcomes = {}
    for device_id in settings.PUSH_CANARY_DEVICES:
        try:
            device = Device.objects.filter(pk=uuid.UUID(device_id)).first()
        except ValueError:
            device = None
        if device is None:
            text = "No such device (deleted, or expired after 31 days)."
            outcomes[device_id] = PushTestOutcome("no_device", "", text)
        else:
            outcomes[device_id] = push_test(device=device)
    for device_id, outcome in outcomes.items():
        CANARY.labels(provider=outcome.kind or "none", status=outcome.status).inc()
        log = logger.info if outcome.status == "delivered" else logger.warning
        log("push canary %s: %s", device_id, outcome.text)
    for kind in sorted(_configured_kinds() - {outcome.kind for outcome in outcomes.values()}):
        CANARY.labels(provider=kind, status="no_canary").inc()
        logger.warning("push canary: %s is configured but no canary device uses it", kind)
    return outcomes
