"""Downloads built from codes: one code's PNG, SVG and poster, and streamed ZIPs of posters."""

import re
import zipfile
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet

from venues.codes import code_qr_text
from venues.models import VenueCode
from venues.rendering import poster_pdf


def code_poster_pdf(code: VenueCode) -> bytes:
    venue = code.venue
    return poster_pdf(
        qr_text=code_qr_text(code),
        name_en=venue.name_en,
        name_zh=venue.name_zh,
        address_en=venue.address_en,
        address_zh=venue.address_zh,
    )


def poster_file_name(code: VenueCode, *, extension: str = "pdf") -> str:
    """ASCII, filesystem-safe: branch names repeat in a chain, so the venue id keeps them apart."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", code.venue.name_en).strip("-")[:60] or "venue"
    return f"{slug}-{str(code.venue_id)[:8]}-v{code.version}.{extension}"


class _ChunkSink:
    """A write-only file for ZipFile: it collects what is written until drained."""

    def __init__(self):
        self._chunks: list[bytes] = []

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def drain(self) -> Iterator[bytes]:
        chunks, self._chunks = self._chunks, []
        yield from chunks


def posters_zip_stream(codes: QuerySet[VenueCode] | Iterable[VenueCode]) -> Iterator[bytes]:
    """A ZIP of one poster per code, produced as it is sent.

    Memory stays at one poster: each is rendered, written and handed to the response before
    the next. ZipFile writes data descriptors when its file cannot seek, so it streams.
    PDFs are compressed already, so entries are stored, not deflated.
    """
    sink = _ChunkSink()
    iterator = codes.iterator(chunk_size=100) if isinstance(codes, QuerySet) else codes
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for code in iterator:
            with archive.open(poster_file_name(code), mode="w") as entry:
                entry.write(code_poster_pdf(code))
            yield from sink.drain()
    yield from sink.drain()
