import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from leavehome.lib.conditional import json_etag
from leavehome.models import AuditEntry
from venues import keystore
from venues.keys import NoActiveSigningKey
from venues.models import Category, Venue, VenueCode
from venues.selectors import revocations_document
from venues.services import (
    VenueStateError,
    venue_close,
    venue_code_regenerate,
    venue_register,
    venue_reinstate,
    venue_suspend,
)

pytestmark = pytest.mark.django_db


def test_register_issues_version_one_with_a_fresh_vk(venue):
    code = VenueCode.objects.get(venue=venue)
    assert (venue.current_version, code.version, code.revoked_at) == (1, 1, None)
    other = venue_register(owner=venue.owner, name_en="B", name_zh="乙", category=Category.RETAIL)
    assert keystore.vk_decrypt(code) != keystore.vk_decrypt(other.codes.get())
    assert AuditEntry.objects.filter(action="venue.register", object_id=str(venue.id), actor=venue.owner).exists()


def test_register_without_an_active_key_fails_clearly_and_saves_nothing(owner, caplog):
    with translation.override("en"), pytest.raises(NoActiveSigningKey, match="cannot be issued right now"):
        venue_register(owner=owner, name_en="A", name_zh="甲", category=Category.RETAIL)  # what the owner is told
    assert "manage.py signing_key_create" in caplog.text  # what the operator is told
    assert not Venue.objects.exists()


def test_taxi_name_is_its_normalised_plate(owner, signing_key):
    taxi = venue_register(owner=owner, name_en="ab 1234", name_zh="", category=Category.TAXI)
    assert (taxi.name_en, taxi.name_zh) == ("AB1234", "AB1234")


@pytest.mark.parametrize("plate", ["", "ABC123", "AB12345", "IO 12", "AB 0123", "12AB"])
def test_taxi_with_an_invalid_plate_is_refused(owner, signing_key, plate):
    with pytest.raises(ValidationError):
        venue_register(owner=owner, name_en=plate, name_zh=plate, category=Category.TAXI)
    assert not Venue.objects.exists()


def test_unknown_category_is_refused(owner, signing_key):
    with pytest.raises(ValidationError):
        venue_register(owner=owner, name_en="A", name_zh="甲", category="casino")


def test_regenerate_bumps_version_new_vk_and_revokes_the_old(venue, owner):
    old = VenueCode.objects.get(venue=venue, version=1)
    new = venue_code_regenerate(venue=venue, actor=owner)
    venue.refresh_from_db()
    old.refresh_from_db()
    assert (venue.current_version, new.version) == (2, 2)
    assert old.revoked_at is not None and new.revoked_at is None
    assert keystore.vk_decrypt(old) != keystore.vk_decrypt(new)
    assert revocations_document() == {"revoked": [{"sub": str(venue.id), "valid_ver": 2}]}
    assert AuditEntry.objects.filter(action="venue.regenerate", object_id=str(venue.id)).exists()


def test_closed_venue_has_no_valid_version_and_cannot_regenerate(venue, owner):
    venue_close(venue=venue, actor=owner)
    assert not VenueCode.objects.filter(venue=venue, revoked_at__isnull=True).exists()
    assert revocations_document() == {"revoked": [{"sub": str(venue.id), "valid_ver": None}]}
    with pytest.raises(VenueStateError):
        venue_code_regenerate(venue=venue, actor=owner)


def test_suspend_revokes_and_reinstate_restores_the_current_version(venue, admin_user):
    venue_suspend(venue=venue, actor=admin_user, reason="fake venue")
    assert revocations_document()["revoked"] == [{"sub": str(venue.id), "valid_ver": None}]
    venue_reinstate(venue=venue, actor=admin_user)
    assert revocations_document()["revoked"] == []
    assert VenueCode.objects.get(venue=venue).revoked_at is None
    actions = list(AuditEntry.objects.filter(object_id=str(venue.id)).values_list("action", "actor"))
    assert ("venue.suspend", admin_user.pk) in actions and ("venue.reinstate", admin_user.pk) in actions


def test_etag_changes_exactly_when_the_list_does(venue, owner):
    first = json_etag(revocations_document())
    assert json_etag(revocations_document()) == first
    venue_code_regenerate(venue=venue, actor=owner)
    assert json_etag(revocations_document()) != first
