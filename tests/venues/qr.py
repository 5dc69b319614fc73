"""Real decoders for the tests: zxing-cpp for QR codes, pypdfium2 to rasterise PDFs."""

import io

import pypdfium2
import zxingcpp
from PIL import Image


def qr_texts_in_image(image) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def qr_texts_in_png(data: bytes) -> list[str]:
    return qr_texts_in_image(Image.open(io.BytesIO(data)))


def qr_texts_in_pdf(data: bytes, *, scale: float = 2) -> list[str]:
    document = pypdfium2.PdfDocument(data)
    try:
        return [text for page in document for text in qr_texts_in_image(page.render(scale=scale).to_pil())]
    finally:
        document.close()
