"""CSV export of an owner's venues, safe to open in a spreadsheet."""

import csv
from collections.abc import Iterator

from django.db.models import QuerySet

from venues.models import Venue

# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets
# (CSV injection); tab and carriage return also start one in some of them.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = ["id", "name_en", "name_zh", "address_en", "address_zh", "district", "category", "status", "version"]


def spreadsheet_safe(value) -> str:
    """The cell as text, prefixed with ``'`` when a spreadsheet would run it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


class _Echo:
    def write(self, value):
        return value


def venues_csv_stream(venues: QuerySet[Venue]) -> Iterator[str]:
    """Rows of the export, header first, one line at a time."""
    writer = csv.writer(_Echo())
    yield "\ufeff"  # so spreadsheets read the Chinese names as UTF-8
    yield writer.writerow(EXPORT_COLUMNS)
    for venue in venues.iterator(chunk_size=500):
        row = [
            venue.id,
            venue.name_en,
            venue.name_zh,
            venue.address_en,
            venue.address_zh,
            venue.district,
            venue.category,
            venue.status,
            venue.current_version,
        ]
        yield writer.writerow([spreadsheet_safe(cell) for cell in row])
