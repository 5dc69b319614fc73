"""Fixtures for the venues tests: an active signing key, owners and venues."""

import pytest
from django.contrib.auth import get_user_model

from venues.keys import signing_key_create
from venues.models import Category, District
from venues.services import venue_register


@pytest.fixture
def signing_key(db):
    return signing_key_create()


def _owner(email):
    return get_user_model().objects.create_user(username=email, email=email, password="correct horse battery 9")


@pytest.fixture
def owner(db):
    return _owner("owner@example.com")


@pytest.fixture
def other_owner(db):
    return _owner("other@example.com")


@pytest.fixture
def venue(owner, signing_key):
    return venue_register(
        owner=owner,
        name_en="Lucky Noodle House",
        name_zh="好運麵家",
        address_en="1 Nathan Road",
        address_zh="彌敦道1號",
        district=District.YAU_TSIM_MONG,
        category=Category.CATERING,
    )


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client
