"""Owners' pages: registration, downloads, regeneration, closing, and who may see what."""

import pytest

from venues.models import Venue, VenueCode

pytestmark = pytest.mark.django_db


def test_owner_registers_a_venue_and_sees_it(owner_client, signing_key):
    response = owner_client.post(
        "/venues/new/",
        {"category": "catering", "name_en": "Tea House", "name_zh": "茶樓", "district": "wan-chai"},
        follow=True,
    )
    venue = Venue.objects.get()
    assert response.redirect_chain[-1][0] == f"/venues/{venue.id}/"
    assert "茶樓" in response.content.decode()
    assert venue.codes.get().version == 1
    assert "Tea House" in owner_client.get("/venues/").content.decode()


def test_invalid_form_shows_errors_and_saves_nothing(owner_client, signing_key):
    response = owner_client.post("/venues/new/", {"category": "taxi", "name_en": "ABC 12345"})
    assert response.status_code == 200
    assert "licence plate" in response.content.decode()
    response = owner_client.post("/venues/new/", {"category": "catering", "name_en": "No Chinese name"})
    assert "This field is required." in response.content.decode()
    assert not Venue.objects.exists()


def test_taxi_is_registered_under_its_normalised_plate(owner_client, signing_key):
    owner_client.post("/venues/new/", {"category": "taxi", "name_en": "uv 1234"})
    assert Venue.objects.values_list("name_en", "name_zh").get() == ("UV1234", "UV1234")


def test_without_an_active_key_the_form_says_so(owner_client):
    response = owner_client.post("/venues/new/", {"category": "retail", "name_en": "Shop", "name_zh": "店"})
    assert "cannot be issued" in response.content.decode()
    assert not Venue.objects.exists()


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", "/"),
        ("get", "/code.png"),
        ("get", "/code.svg"),
        ("get", "/poster.pdf"),
        ("post", "/regenerate/"),
        ("post", "/close/"),
    ],
)
def test_another_owners_venue_is_404(client, other_owner, venue, method, suffix):
    client.force_login(other_owner)
    response = getattr(client, method)(f"/venues/{venue.id}{suffix}")
    assert response.status_code == 404
    venue.refresh_from_db()
    assert (venue.status, venue.current_version) == ("active", 1)


def test_another_owners_venues_are_not_listed_or_exported(client, other_owner, venue):
    client.force_login(other_owner)
    assert venue.name_en not in client.get("/venues/").content.decode()
    assert venue.name_en not in b"".join(client.get("/venues/export.csv").streaming_content).decode()


def test_pages_need_a_login(client, venue):
    response = client.get(f"/venues/{venue.id}/poster.pdf")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_regenerate_and_close_from_the_page(owner_client, venue):
    response = owner_client.post(f"/venues/{venue.id}/regenerate/", follow=True)
    assert 'id="code-version">2<' in response.content.decode()
    assert VenueCode.objects.get(venue=venue, version=1).revoked_at is not None
    assert owner_client.get(f"/venues/{venue.id}/regenerate/").status_code == 405
    owner_client.post(f"/venues/{venue.id}/close/")
    venue.refresh_from_db()
    assert venue.status == "closed"
    assert not VenueCode.objects.filter(venue=venue, revoked_at__isnull=True).exists()


def test_export_escapes_formula_cells(owner_client, owner, signing_key):
    from venues.services import venue_register

    venue_register(owner=owner, name_en="=HYPERLINK(1)", name_zh="@SUM(A1)", address_en="+1", category="retail")
    body = b"".join(owner_client.get("/venues/export.csv").streaming_content).decode()
    assert "'=HYPERLINK(1)" in body and "'@SUM(A1)" in body and "'+1" in body


def test_pages_render_in_traditional_chinese(owner_client, venue):
    response = owner_client.get("/venues/", HTTP_ACCEPT_LANGUAGE="zh-hant")
    assert "我的場所" in response.content.decode()
