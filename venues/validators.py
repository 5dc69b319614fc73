"""Validation shared by the single-venue form, the CSV import and the services."""

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# Hong Kong registration marks on taxis: one or two letters, then 1 to 4 digits without a
# leading zero ("AB 1234", "HK 88"). The Transport Department never issues I, O or Q, which
# read as 1 and 0.
_PLATE = re.compile(r"^([A-HJ-NPR-Z]{1,2})([1-9][0-9]{0,3})$")


def taxi_plate_normalise(value: str) -> str:
    """A taxi's licence plate in canonical form (``"ab 1234"`` → ``"AB1234"``), or ValidationError."""
    compact = re.sub(r"[\s-]+", "", value or "").upper()
    if not _PLATE.match(compact):
        raise ValidationError(
            _("Enter a Hong Kong licence plate: one or two letters (not I, O or Q), then 1 to 4 digits."),
            code="plate",
        )
    return compact
