"""Staff admin: search, suspend and reinstate with an audit record, the administrators group."""

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group

from leavehome.models import AuditEntry
from venues.selectors import revocations_document

pytestmark = pytest.mark.django_db


def test_venues_are_searchable_by_chinese_name(admin_client, venue):
    response = admin_client.get("/admin/venues/venue/", {"q": "好運"})
    assert response.status_code == 200 and venue.name_en in response.content.decode()
    assert venue.name_en not in admin_client.get("/admin/venues/venue/", {"q": "nothing"}).content.decode()


def test_suspend_and_reinstate_actions_revoke_and_are_audited(admin_client, admin_user, venue):
    admin_client.post("/admin/venues/venue/", {"action": "suspend", "_selected_action": [str(venue.id)]})
    venue.refresh_from_db()
    assert venue.status == "suspended"
    assert revocations_document()["revoked"] == [{"sub": str(venue.id), "valid_ver": None}]
    admin_client.post("/admin/venues/venue/", {"action": "reinstate", "_selected_action": [str(venue.id)]})
    venue.refresh_from_db()
    assert venue.status == "active"
    audit = AuditEntry.objects.filter(object_id=str(venue.id)).values_list("actor", "action")
    assert set(audit) >= {(admin_user.pk, "venue.suspend"), (admin_user.pk, "venue.reinstate")}


def test_venue_administrators_group_has_the_venue_permissions():
    # Run the data migration's function again (it is idempotent): a transactional test run
    # earlier on a reused test database flushes the rows migrations created.
    migration = importlib.import_module("venues.migrations.0003_venue_administrators_group")
    migration.create_group(apps, schema_editor=None)
    codenames = set(Group.objects.get(name="Venue administrators").permissions.values_list("codename", flat=True))
    assert {"view_venue", "change_venue", "view_venuecode"} <= codenames
