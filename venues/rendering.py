"""Rendering a venue code: QR as PNG and SVG, and the A4 poster PDF.

The poster is drawn with reportlab and embeds a CJK TrueType font (settings.POSTER_CJK_FONT,
by default Debian's fonts-wqy-zenhei). reportlab cannot embed CFF-outline fonts such as
Noto CJK; it subsets TrueType fonts, so a poster carries only the glyphs it uses, and it
writes a ToUnicode map, so the Chinese name is in the PDF's text layer too.
"""

import functools
import io

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from reportlab.lib.colors import HexColor, black, white
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen import canvas

# Level M restores up to 15% of a damaged or dirty poster and keeps a code of ~450
# characters at a module size a phone reads from a metre away on A4.
_ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M
_FONT_NAME = "LeaveHomeCJK"
_BRAND = HexColor("#0b6e4f")


def qr_matrix(text: str) -> list[list[bool]]:
    """The QR modules of ``text``, quiet zone (4 modules) included."""
    code = qrcode.QRCode(error_correction=_ERROR_CORRECTION, border=4)
    code.add_data(text)
    code.make(fit=True)
    return code.get_matrix()


def qr_png(text: str, *, box_size: int = 10) -> bytes:
    """A black-on-white PNG of the QR code of ``text``."""
    code = qrcode.QRCode(error_correction=_ERROR_CORRECTION, border=4, box_size=box_size)
    code.add_data(text)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image().save(buffer, format="PNG")
    return buffer.getvalue()


def qr_svg(text: str) -> bytes:
    """A scalable SVG (one path on a white quiet zone) of the QR code of ``text``, for printers."""
    code = qrcode.QRCode(error_correction=_ERROR_CORRECTION, border=4, image_factory=qrcode.image.svg.SvgPathFillImage)
    code.add_data(text)
    code.make(fit=True)
    return code.make_image().to_string(encoding="unicode").encode("utf-8")


@functools.cache
def _cjk_font() -> str:
    path = settings.POSTER_CJK_FONT
    try:
        pdfmetrics.registerFont(TTFont(_FONT_NAME, path, subfontIndex=0))
    except (OSError, TTFError) as error:
        raise ImproperlyConfigured(
            f"POSTER_CJK_FONT={path!r} is not a readable TrueType font ({error}); "
            "install fonts-wqy-zenhei or point POSTER_CJK_FONT at a TrueType CJK font."
        ) from error
    return _FONT_NAME


def _draw_qr(pdf: canvas.Canvas, matrix, *, x, y, size):
    """Dark modules as one path of horizontal runs: small file, crisp at any print size."""
    module = size / len(matrix)
    path = pdf.beginPath()
    for row_index, row in enumerate(matrix):
        top = y + size - (row_index + 1) * module
        column = 0
        while column < len(row):
            if row[column]:
                start = column
                while column < len(row) and row[column]:
                    column += 1
                path.rect(x + start * module, top, (column - start) * module, module)
            else:
                column += 1
    pdf.setFillColor(black)
    pdf.drawPath(path, stroke=0, fill=1)


def _draw_centred_fitting(pdf, text, *, font, size, y, max_width, page_width):
    """Centre ``text``, shrinking the font until it fits (long branch names)."""
    while size > 10 and stringWidth(text, font, size) > max_width:
        size -= 1
    pdf.setFont(font, size)
    pdf.drawCentredString(page_width / 2, y, text)


POSTER_INSTRUCTIONS = (
    ("Scan with the LeaveHome app when you arrive.", "抵達時請用「安心出行」應用程式掃描。"),
    (
        "We will tell you if a confirmed case was here at about the same time.",
        "如有確診者約同一時間到訪，我們會通知您。",
    ),
    ("Scanned with a plain camera? The page it opens explains the app.", "用相機掃描？開啟的網頁會介紹此應用程式。"),
)


def poster_pdf(*, qr_text: str, name_en: str, name_zh: str, address_en: str = "", address_zh: str = "") -> bytes:
    """An A4 poster: the venue's names, its QR code, and short bilingual instructions."""
    font = _cjk_font()
    width, height = A4
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, pageCompression=1)
    pdf.setTitle(f"{name_en} / {name_zh}")
    pdf.setCreator("LeaveHome")

    pdf.setFillColor(_BRAND)
    pdf.rect(0, height - 28 * mm, width, 28 * mm, stroke=0, fill=1)
    pdf.setFillColor(white)
    pdf.setFont(font, 22)
    pdf.drawCentredString(width / 2, height - 18 * mm, "LeaveHome 安心出行")

    margin = 18 * mm
    pdf.setFillColor(black)
    _draw_centred_fitting(
        pdf, name_zh, font=font, size=34, y=height - 50 * mm, max_width=width - 2 * margin, page_width=width
    )
    _draw_centred_fitting(
        pdf, name_en, font=font, size=26, y=height - 63 * mm, max_width=width - 2 * margin, page_width=width
    )
    if address_en or address_zh:
        address = " / ".join(part for part in (address_zh, address_en) if part)
        _draw_centred_fitting(
            pdf, address, font=font, size=12, y=height - 72 * mm, max_width=width - 2 * margin, page_width=width
        )

    qr_size = 135 * mm
    _draw_qr(pdf, qr_matrix(qr_text), x=(width - qr_size) / 2, y=height - 80 * mm - qr_size, size=qr_size)

    y = height - 80 * mm - qr_size - 12 * mm
    for english, chinese in POSTER_INSTRUCTIONS:
        _draw_centred_fitting(pdf, chinese, font=font, size=14, y=y, max_width=width - 2 * margin, page_width=width)
        _draw_centred_fitting(
            pdf, english, font=font, size=11, y=y - 6 * mm, max_width=width - 2 * margin, page_width=width
        )
        y -= 15 * mm
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
