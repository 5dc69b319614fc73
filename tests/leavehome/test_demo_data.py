import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from leavehome.management.commands.demo_data import OFFICIAL, OWNER, VENUES
from venues.models import SigningKey, Venue, VenueCode


@pytest.mark.django_db
def test_demo_data_creates_logins_and_venues_once(settings):
    settings.DEBUG = True
    call_command("demo_data")
    call_command("demo_data")  # make run calls it every time: it must not duplicate anything

    owner = get_user_model().objects.get(username=OWNER[0])
    assert Venue.objects.filter(owner=owner).count() == len(VENUES)
    assert VenueCode.objects.filter(venue__owner=owner, version=1).count() == len(VENUES)
    assert SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).count() == 1
    assert owner.is_active and owner.check_password(OWNER[1])
    official = get_user_model().objects.get(username=OFFICIAL[0])
    assert official.is_staff and not official.is_superuser
    assert official.check_password(OFFICIAL[1])


@pytest.mark.django_db
def test_demo_data_refuses_to_run_in_production(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("demo_data")
    assert not get_user_model().objects.filter(username=OWNER[0]).exists()
