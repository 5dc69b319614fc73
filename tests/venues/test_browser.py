"""A real browser (Debian's chromium through Playwright, the ``page`` fixture of
tests/conftest.py) walks an owner through the site."""

import json
import re

import pytest
from django.core import mail

from tests.venues.qr import qr_texts_in_pdf
from venues.codes import code_qr_text
from venues.models import Venue, VenueCode

PASSWORD = "noodles-on-nathan-road-88"


@pytest.mark.browser
# The live server needs committed data, so this test's rows are flushed afterwards. No
# serialized_rollback: reloading the serialized database collides with the content types a
# previous flush recreated under new ids (IntegrityError in a full run).
@pytest.mark.django_db(transaction=True)
def test_owner_signs_up_registers_downloads_and_regenerates(page, live_server, tmp_path):
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

    page.click("#regenerate")
    page.wait_for_selector("#code-version:has-text('2')")

    # A plain camera opens the landing page; it names the venue from the fragment.
    jws = code_qr_text(first_code).split("#", 1)[1]
    page.goto(f"{live_server.url}/c/#{jws}")
    assert page.inner_text("#venue-name") == "好運麵家 · Lucky Noodle House"

    revocations = page.request.get(f"{live_server.url}/api/v1/revocations")
    assert revocations.ok
    assert json.loads(revocations.body()) == {"revoked": [{"sub": str(venue.id), "valid_ver": 2}]}
