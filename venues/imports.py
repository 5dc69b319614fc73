"""The express channel: register a chain's branches from one CSV, all or nothing.

Every row is validated (with the same form as the single-venue page) before anything is
written; any problem rejects the whole file and is reported by spreadsheet row (the header
is row 1) and column. Only a clean file reaches the database, in one transaction of two
bulk inserts.
"""

import csv
import io
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from leavehome.audit import audit_record
from leavehome.errors import ServiceError
from venues.forms import VenueForm
from venues.models import Category, District, VenueImport
from venues.services import venue_build, venues_create

COLUMNS = ["name_en", "name_zh", "address_en", "address_zh", "district", "category"]
REQUIRED_COLUMNS = {"name_en", "category"}
# What the page offers as a starting point: a restaurant branch and a taxi.
SAMPLE_ROWS = [
    ["Lucky Noodle House (Mong Kok)", "好運麵家（旺角）", "1 Nathan Road", "彌敦道1號", "yau-tsim-mong", "catering"],
    ["AB1234", "", "", "", "", "taxi"],
]


def sample_csv() -> bytes:
    """A CSV with the expected header and two example rows, UTF-8 with a byte-order mark."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writer.writerows(SAMPLE_ROWS)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


@dataclass(frozen=True)
class ImportProblem:
    row: int  # spreadsheet row, header = 1; 0 for the file as a whole
    column: str
    message: str


class ImportInvalid(ServiceError):
    """The CSV was rejected; ``problems`` lists every problem found."""

    code = "import_invalid"

    def __init__(self, problems: list[ImportProblem]):
        super().__init__(_("The file has %(count)d problems; nothing was imported.") % {"count": len(problems)})
        self.problems = problems


def _choice_lookup(choices) -> dict[str, str]:
    # Accept a slug ("yau-tsim-mong") or the English label ("Yau Tsim Mong"), any case.
    lookup = {}
    for value, label in choices:
        lookup[value.lower()] = value
        lookup[str(label).lower()] = value
    return lookup


def _rows(data: bytes):
    try:
        text = data.decode("utf-8-sig")  # spreadsheets write a byte-order mark
    except UnicodeDecodeError as error:
        raise ImportInvalid([ImportProblem(0, "", _("The file is not UTF-8 text; save it as “CSV UTF-8”."))]) from error
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [name.strip().lower() for name in reader.fieldnames or []]
        missing = REQUIRED_COLUMNS - set(header)
        unknown = set(header) - set(COLUMNS)
        problems = [ImportProblem(1, column, _("This column is missing.")) for column in sorted(missing)]
        problems += [ImportProblem(1, column, _("Unknown column.")) for column in sorted(unknown)]
        if problems:
            raise ImportInvalid(problems)
        reader.fieldnames = header
        for row in reader:
            yield reader.line_num, {key: (value or "").strip() for key, value in row.items() if key in COLUMNS}
    except csv.Error as error:
        # The csv module refuses cells over its field limit (131,072 characters) and
        # malformed quoting; both are the file's fault, not a server error.
        message = _("This row cannot be read as CSV: a cell is far too long or badly quoted.")
        raise ImportInvalid([ImportProblem(reader.line_num, "", message)]) from error


def venues_validate(*, owner, data: bytes) -> list:
    """Unsaved, validated venues for every row of the CSV, or :class:`ImportInvalid`."""
    categories, districts = _choice_lookup(Category.choices), _choice_lookup(District.choices)
    venues, problems = [], []
    for row_number, row in _rows(data):
        if not any(row.values()):
            continue  # blank line at the end of a spreadsheet export
        if len(venues) + len(problems) >= settings.VENUE_IMPORT_MAX_ROWS:
            raise ImportInvalid(
                [ImportProblem(row_number, "", _("Too many rows; the limit is %d.") % settings.VENUE_IMPORT_MAX_ROWS)]
            )
        row["category"] = categories.get(row.get("category", "").lower(), row.get("category", ""))
        row["district"] = districts.get(row.get("district", "").lower(), row.get("district", ""))
        form = VenueForm(row)
        if not form.is_valid():
            for column, messages in form.errors.items():
                problems += [ImportProblem(row_number, column, message) for message in messages]
            continue
        try:
            venues.append(venue_build(owner=owner, **form.cleaned_data))
        except ValidationError as error:
            for column, messages in error.message_dict.items():
                problems += [ImportProblem(row_number, column, message) for message in messages]
    if not venues and not problems:
        problems.append(ImportProblem(0, "", _("The file has no branches.")))
    if problems:
        raise ImportInvalid(problems)
    return venues


def venues_import(*, owner, file_name: str, data: bytes) -> VenueImport:
    """Register every branch of a CSV, or none: raises :class:`ImportInvalid` with all problems."""
    venues = venues_validate(owner=owner, data=data)
    with transaction.atomic():
        batch = VenueImport.objects.create(owner=owner, file_name=file_name[:255], venue_count=len(venues))
        venues_create(venues, import_batch=batch)
        audit_record(actor=owner, action="venue.import", obj=batch, venues=len(venues))
    return batch
