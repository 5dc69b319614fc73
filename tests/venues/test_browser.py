"""A real browser (Debian's chromium through Playwright, the ``page`` fixture of
tests/conftest.py) walks an owner through the site."""

import base64
import json
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core import mail

from tests.phone.server import venue_make
from tests.venues.qr import qr_texts_in_pdf
from venues.codes import code_qr_text
from venues.models import Venue, VenueCode

PASSWORD = "noodles-on-nathan-road-88"


@pytest.mark.browser
# The live server needs committed data, so this test's rows are flushed afterwards. No
# serialized_rollback: reloading the serialized database collides with the content types a
# previous flush recreated under new ids (IntegrityError in a full run).
@pytest.mark.django_db(transaction=True)
def test_owner_signs_up_registers_downloads_and_regenerates(page, live_server, tmp_path, settings):
    settings.SITE_URL = live_server.url  # e-mailed links point at the public base URL
    page.goto(f"{live_server.url}/accounts/signup/")
    page.fill("input[name=email]", "chain@example.com")
    page.fill("input[name=full_name]", "Lucky Noodle Ltd")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("main form.stacked button[type=submit]")
    page.wait_for_selector("text=Check your e-mail")

    (message,) = mail.outbox
    link = re.search(r"https?://\S+", message.body).group(0)
    page.goto(link)
    page.wait_for_url(f"{live_server.url}/venues/")

    page.click("text=Register a venue")
    page.select_option("select[name=category]", "catering")
    page.fill("input[name=name_en]", "Lucky Noodle House")
    page.fill("input[name=name_zh]", "好運麵家")
    page.select_option("select[name=district]", "yau-tsim-mong")
    page.click("main form.stacked button[type=submit]")
    page.wait_for_selector("#code-version")
    assert page.inner_text("#code-version") == "1"

    with page.expect_download() as download_info:
        page.click("#download-poster")
    poster = tmp_path / "poster.pdf"
    download_info.value.save_as(poster)
    venue = Venue.objects.get()
    first_code = VenueCode.objects.select_related("venue", "signing_key").get(venue=venue, version=1)
    assert qr_texts_in_pdf(poster.read_bytes()) == [code_qr_text(first_code)]

    # Regenerating revokes every printed poster: the browser asks first.
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.click("#regenerate")
    page.wait_for_selector("#code-version:has-text('2')")
    assert dialogs == ["Regenerate the code? Every poster printed so far stops working."]

    # A plain camera opens the landing page; it names the venue from the fragment.
    jws = code_qr_text(first_code).split("#", 1)[1]
    page.goto(f"{live_server.url}/c/#{jws}")
    page.wait_for_selector("html[data-code-check]", state="attached")
    assert page.inner_text("#venue-name") == "好運麵家 · Lucky Noodle House"

    revocations = page.request.get(f"{live_server.url}/api/v1/revocations")
    assert revocations.ok
    assert json.loads(revocations.body()) == {"revoked": [{"sub": str(venue.id), "valid_ver": 2}]}


def _forged(jws: str, **claims) -> str:
    """The code with its claims changed and the original signature kept."""
    header, payload, signature = jws.split(".")
    body = {**json.loads(base64.urlsafe_b64decode(payload + "==")), **claims}
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _signed_by_a_stranger(jws: str) -> str:
    """The same claims and kid, signed by a key the site never published."""
    header, payload, _ = jws.split(".")
    signature = Ed25519PrivateKey.generate().sign(f"{header}.{payload}".encode())
    return f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_landing_page_names_no_venue_from_an_unverified_code(page, live_server):
    venue = venue_make(name_en="Lucky Noodle House", name_zh="好運麵家")
    jws = code_qr_text(VenueCode.objects.select_related("venue", "signing_key").get(venue=venue)).split("#", 1)[1]
    for code in (
        _forged(jws, name={"en": "Official Testing Centre", "zh": "官方檢測中心"}),
        _signed_by_a_stranger(jws),
        "not-a-code",
    ):
        page.goto("about:blank")  # a fresh load each time, not a fragment change
        page.goto(f"{live_server.url}/c/#{code}")
        page.wait_for_selector("html[data-code-check=invalid]", state="attached")
        assert not page.is_visible("#venue-name")
        assert page.inner_text("#venue-name") == ""
    # The genuine code is named; scanned next in the same tab (only the fragment changes) too.
    page.goto(f"{live_server.url}/c/#{jws}")
    page.wait_for_selector("html[data-code-check=valid]", state="attached")
    assert page.inner_text("#venue-name") == "好運麵家 · Lucky Noodle House"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_closing_a_venue_asks_first_under_the_csp(page, live_server, client):
    venue = venue_make()
    refused = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    client.force_login(venue.owner)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    questions = []

    def decline(dialog):
        questions.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", decline)
    page.goto(f"{live_server.url}/venues/{venue.pk}/")
    page.click("button.danger")
    assert questions and "Close this venue for good?" in questions[0]
    venue.refresh_from_db()
    assert venue.status == Venue.Status.ACTIVE
    assert refused == []
