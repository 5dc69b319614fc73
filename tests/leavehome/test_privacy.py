"""docs/privacy.md kept: every column that may hold a client's address is purged, and known.

The schema is scanned for address-like columns (by type and by name). Each one found must be
listed below, either with the purge that removes it (and that purge is run here on rows past
their time) or as something that is not a client's address. A new column of that kind fails
this test until it is given a purge or a reason.
"""

import datetime as dt
import re

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib.auth import get_user_model

from leavehome.logins import login_records_cutoff
from notifications.models import Device, PushChannel
from notifications.retention import retention_cutoff, retention_purge
from tests.notifications.push_fixtures import device_with_channel, fcm_token

pytestmark = pytest.mark.django_db

ADDRESS_WORDS = {"ip", "address", "addr", "agent", "remote", "forwarded", "host", "email"}
ADDRESS_TYPES = {"GenericIPAddressField", "IPAddressField"}

PURGED = {
    "axes_accessattempt.ip_address": "login failures, past the lockout cool-off",
    "axes_accessattempt.user_agent": "login failures, past the lockout cool-off",
    "axes_accesslog.ip_address": "not written (AXES_DISABLE_ACCESS_LOG); past the cool-off",
    "axes_accesslog.user_agent": "not written (AXES_DISABLE_ACCESS_LOG); past the cool-off",
    "axes_accessfailurelog.ip_address": "not written (off by default); past the cool-off",
    "axes_accessfailurelog.user_agent": "not written (off by default); past the cool-off",
    "notifications_pushchannel.address_hash": "a device's push address, with the device when idle",
    "notifications_pushchannel.address_sealed": "a device's push address, with the device when idle",
}
NOT_CLIENT_ADDRESSES = {
    "auth_user.email": "an owner's or official's e-mail address: the account itself",
    "venues_venue.address_en": "a venue's street address, printed on its poster",
    "venues_venue.address_zh": "a venue's street address, printed on its poster",
}


def _address_like_columns() -> set[str]:
    found = set()
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            words = set(re.split(r"[^a-z]+", field.column.lower()))
            if words & ADDRESS_WORDS or field.get_internal_type() in ADDRESS_TYPES:
                found.add(f"{model._meta.db_table}.{field.column}")
    return found


def test_every_address_like_column_has_a_purge_or_a_reason():
    assert _address_like_columns() == set(PURGED) | set(NOT_CLIENT_ADDRESSES)


def test_the_retention_purge_removes_login_records_past_the_cool_off():
    stale = login_records_cutoff() - dt.timedelta(minutes=1)
    record = {"username": "owner@example.com", "ip_address": "192.0.2.7", "user_agent": "Phone/1"}
    for model in (AccessAttempt, AccessLog, AccessFailureLog):
        extra = {"failures_since_start": 1} if model is AccessAttempt else {}
        old = model.objects.create(**record, **extra)
        model.objects.filter(pk=old.pk).update(attempt_time=stale)
    recent = AccessAttempt.objects.create(**{**record, "username": "other@example.com"}, failures_since_start=1)

    removed = retention_purge()

    assert removed["login_records"] == 3
    assert list(AccessAttempt.objects.all()) == [recent]  # a lockout in progress still counts
    assert not AccessLog.objects.exists() and not AccessFailureLog.objects.exists()


def test_the_retention_purge_removes_an_idle_devices_push_address():
    idle = device_with_channel({"kind": "fcm", "token": fcm_token(1)})
    active = device_with_channel({"kind": "fcm", "token": fcm_token(2)})
    Device.objects.filter(pk=idle.pk).update(last_seen_on=retention_cutoff() - dt.timedelta(days=1))
    retention_purge()
    assert list(PushChannel.objects.values_list("device_id", flat=True)) == [active.pk]


def test_a_successful_login_leaves_no_address_behind(client):
    get_user_model().objects.create_user(username="owner@example.com", email="owner@example.com", password="pw-12345-x")
    answer = client.post("/accounts/login/", {"username": "owner@example.com", "password": "pw-12345-x"})
    assert answer.status_code == 302
    assert not AccessLog.objects.exists()
    assert not AccessAttempt.objects.exists()
