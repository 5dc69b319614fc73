"""Fixtures and helpers of the health officials' console tests: staff, a venue, a draft case.

Made visible to the tests by tests/notifications/conftest.py; helpers are imported by name.
"""

import datetime as dt
import importlib
import itertools
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from notifications.devices import device_register
from notifications.models import Case, CaseVisit
from notifications.visits import visit_tokens_ingest
from tests.phone.derivation import visit_tokens
from venues.keys import NoActiveSigningKey, signing_key_active, signing_key_create
from venues.keystore import vk_decrypt
from venues.models import VenueCode
from venues.services import venue_register

ZONE = ZoneInfo(settings.TIME_ZONE)
PASSWORD = "correct horse battery 9"
_serial = itertools.count(1)


def health_officials_group_create():
    """The group as migration 0006 creates it (a transactional test elsewhere may have flushed it)."""
    migration = importlib.import_module("notifications.migrations.0006_case_publish_permission_health_officials")
    migration.create_group(django_apps, None)


def staff_make(username, *, group=None, permissions=()):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="notifications", codename=codename))
    return user


def official_make(username, **kwargs):
    health_officials_group_create()
    return staff_make(username, group="Health officials", **kwargs)


def venue_with_old_code(**fields):
    """A venue whose first code was issued 60 days ago, so any window in retention is covered."""
    try:
        signing_key_active()
    except NoActiveSigningKey:
        signing_key_create()
    owner = get_user_model().objects.create_user(username=f"owner-{next(_serial)}@example.com")
    defaults = {"name_en": "Lucky Noodle House", "name_zh": "好運麵家", "category": "catering"}
    venue = venue_register(owner=owner, **{**defaults, **fields})
    VenueCode.objects.filter(venue=venue).update(issued_at=timezone.now() - dt.timedelta(days=60))
    return venue


def yesterday_at(hour, minute=0):
    return dt.datetime.combine(timezone.localdate() - dt.timedelta(days=1), dt.time(hour, minute), tzinfo=ZONE)


def draft_make(venue, *, reference="HK-1", start=None, minutes=30):
    start = start or yesterday_at(12)
    case = Case.objects.create(reference=reference, confirmed_on=timezone.localdate())
    CaseVisit.objects.create(case=case, venue=venue, start=start, end=start + dt.timedelta(minutes=minutes))
    return case


def devices_at_venue(venue, count):
    """``count`` devices that were at the venue 12:00–13:00 yesterday (a draft_make window), uploaded."""
    code = venue.codes.get()
    start = int(yesterday_at(12).timestamp())
    days = visit_tokens(vk_decrypt(code), start, start + 3600, settings.TIME_ZONE)
    devices = [device_register()[0] for _ in range(count)]
    for device in devices:
        visit_tokens_ingest(device=device, days=days)
    return devices


@pytest.fixture
def venue(db):
    return venue_with_old_code()


@pytest.fixture
def draft(venue):
    return draft_make(venue)


@pytest.fixture
def official_client(client, db):
    client.force_login(official_make("official"))
    return client
