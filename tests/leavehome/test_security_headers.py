"""Headers every page carries: the Content-Security-Policy, and no caching behind login."""

import pytest
from django.test import Client

from tests.phone.server import venue_make

pytestmark = pytest.mark.django_db

PUBLIC_PAGES = ["/", "/accounts/login/", "/accounts/signup/", "/c/", "/admin/login/", "/api/docs/", "/api/v1/config"]


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_every_page_carries_the_content_security_policy(client, path):
    response = client.get(path)
    assert response.status_code == 200
    policy = dict(
        directive.strip().split(" ", 1) for directive in response["Content-Security-Policy"].split(";") if directive
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline': an injected <script> never runs
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"


def test_the_api_docs_start_up_script_is_a_file_not_inline(client):
    page = client.get("/api/docs/").content.decode()
    assert "<script>" not in page and "<style>" not in page
    assert client.get("/api/docs/", {"script": ""})["Content-Type"].startswith("application/javascript")


@pytest.fixture
def owner_client(db):
    venue = venue_make()
    client = Client()
    client.force_login(venue.owner)
    client.venue = venue
    return client


def _directives(response):
    return {part.strip() for part in response["Cache-Control"].split(",")}


def test_pages_behind_login_are_private_and_not_stored(owner_client):
    venue = owner_client.venue
    for path in ["/venues/", f"/venues/{venue.pk}/", "/accounts/details/", "/accounts/password/change/"]:
        response = owner_client.get(path)
        assert response.status_code == 200, path
        assert {"private", "no-store"} <= _directives(response), path
    poster = owner_client.get(f"/venues/{venue.pk}/poster.pdf")
    assert {"private", "no-store"} <= _directives(poster)


def test_public_pages_for_anonymous_visitors_are_left_cacheable(client):
    assert "Cache-Control" not in client.get("/")


def test_the_phone_api_keeps_its_own_cache_control(client):
    assert client.get("/.well-known/jwks.json")["Cache-Control"] == "public, max-age=300"
