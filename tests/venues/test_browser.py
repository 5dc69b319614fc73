"""A real browser (Debian's chromium through Playwright) walks an owner through the site."""

import json
import os
import re

import pytest
from django.core import mail

from tests.venues.qr import qr_texts_in_pdf
from venues.codes import code_qr_text
from venues.keys import signing_key_create
from venues.models import Venue, VenueCode

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PASSWORD = "noodles-on-nathan-road-88"


@pytest.fixture
def page(live_server):
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test
    # itself (not from the server thread) would otherwise be refused as "async unsafe".
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    signing_key_create()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True, locale="en-GB", viewport={"width": 390, "height": 844})
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


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
    assert page.inner_text("#venue-name") == "好運麵家 · Lucky Noodle House"

    revocations = page.request.get(f"{live_server.url}/api/v1/revocations")
    assert revocations.ok
    assert json.loads(revocations.body()) == {"revoked": [{"sub": str(venue.id), "valid_ver": 2}]}
