"""Fixtures of the notifications tests. Push delivery's live in push_fixtures.py."""

from tests.notifications.push_fixtures import (  # noqa: F401 (fixtures, found by name)
    apns_peer,
    fcm_peer,
    push_phone,
    push_settings,
    vapid_key,
    webpush_receiver,
    worker_push_env,
)
