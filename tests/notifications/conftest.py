"""Fixtures of the notifications tests: push delivery's in push_fixtures.py, the officials' console's in
official_fixtures.py."""

from tests.notifications.official_fixtures import (  # noqa: F401 (fixtures, found by name)
    draft,
    official_client,
    venue,
)
from tests.notifications.push_fixtures import (  # noqa: F401 (fixtures, found by name)
    apns_peer,
    fcm_peer,
    push_phone,
    push_settings,
    vapid_key,
    webpush_receiver,
    worker_push_env,
)
