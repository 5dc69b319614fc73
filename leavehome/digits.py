"""Numbers and dates from input are read in ASCII digits only.

Python's ``int()``, the ``\\d`` of a ``str`` pattern, and the date parsers of Django and DRF
built on them accept every Unicode decimal digit: "٢٠٢٦-١١-٢٣" and "２０２６-１１-２３" parse as
2026-11-23 and "٣" as 3. The protocol and the pages promise ISO 8601 and plain numbers; a
value with two spellings slips past checks that compare text, so anything else is refused.
"""

from django import forms
from django.core.exceptions import ValidationError
from rest_framework import serializers

ASCII_DIGITS_MESSAGE = "Use the digits 0-9."


def is_ascii_digits(text: str) -> bool:
    """True for a non-empty run of 0-9 and nothing else (``str.isdigit`` alone allows "²" and "٣")."""
    return text.isascii() and text.isdigit()


class _AsciiInput:
    def to_internal_value(self, data):
        if isinstance(data, str) and not data.isascii():
            raise serializers.ValidationError(ASCII_DIGITS_MESSAGE, code="invalid")
        return super().to_internal_value(data)


class AsciiIntegerField(_AsciiInput, serializers.IntegerField):
    """DRF's IntegerField, refusing digits other than 0-9 in a string."""


class AsciiDateField(_AsciiInput, serializers.DateField):
    """DRF's DateField, refusing digits other than 0-9."""


class AsciiDateTimeField(_AsciiInput, serializers.DateTimeField):
    """DRF's DateTimeField, refusing digits other than 0-9."""


class AsciiIntegerFormField(forms.IntegerField):
    """Django's form IntegerField, refusing digits other than 0-9."""

    def to_python(self, value):
        if isinstance(value, str) and not value.isascii():
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)
