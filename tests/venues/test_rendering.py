"""Rendered codes decode, with a real QR decoder, to exactly the QR text."""

import io

import pypdf
import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.venues.qr import qr_texts_in_pdf, qr_texts_in_png
from venues import rendering
from venues.codes import code_qr_text
from venues.models import VenueCode

pytestmark = pytest.mark.django_db


@pytest.fixture
def qr_text(venue):
    return code_qr_text(VenueCode.objects.get(venue=venue))


def test_png_decodes_to_exactly_the_qr_text(owner_client, venue, qr_text):
    response = owner_client.get(f"/venues/{venue.id}/code.png")
    assert response["Content-Type"] == "image/png"
    assert qr_texts_in_png(response.content) == [qr_text]


def test_svg_is_one_scalable_path(owner_client, venue):
    response = owner_client.get(f"/venues/{venue.id}/code.svg")
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.count(b"<path") == 1 and b"viewBox" in response.content


def test_poster_decodes_to_exactly_the_qr_text_and_carries_the_chinese_name(owner_client, venue, qr_text):
    response = owner_client.get(f"/venues/{venue.id}/poster.pdf")
    assert response["Content-Type"] == "application/pdf"
    assert "attachment" in response["Content-Disposition"]
    assert qr_texts_in_pdf(response.content) == [qr_text]
    reader = pypdf.PdfReader(io.BytesIO(response.content))
    assert len(reader.pages) == 1
    assert [round(float(side)) for side in reader.pages[0].mediabox[2:]] == [595, 842]  # A4 in points
    text = reader.pages[0].extract_text()
    assert "好運麵家" in text and "Lucky Noodle House" in text
    assert "掃描" in text and "Scan" in text  # bilingual instructions


def test_long_names_are_shrunk_to_fit_and_still_decode():
    text = "https://leavehome.example/c/#" + "x" * 420
    pdf = rendering.poster_pdf(qr_text=text, name_en="A very long branch name " * 4, name_zh="很長的分店名稱" * 6)
    assert qr_texts_in_pdf(pdf) == [text]


def test_missing_cjk_font_is_a_clear_configuration_error(settings):
    settings.POSTER_CJK_FONT = "/nonexistent/font.ttc"
    rendering._cjk_font.cache_clear()
    try:
        with pytest.raises(ImproperlyConfigured, match="POSTER_CJK_FONT"):
            rendering.poster_pdf(qr_text="x", name_en="a", name_zh="b")
    finally:
        rendering._cjk_font.cache_clear()
