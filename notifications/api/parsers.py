"""A JSON parser that enforces the request body limit and parses with the API's strict rules.

DRF reads the body from the raw stream, which bypasses Django's
DATA_UPLOAD_MAX_MEMORY_SIZE check (that one guards only ``request.body`` and forms), so a
huge upload would be read and parsed whole before the token-count limit could refuse it.
Parsing is ``leavehome.api.json_body_parse``: deep nesting and lone surrogates are a 400.
"""

from django.conf import settings
from rest_framework.parsers import JSONParser

from leavehome.api import RequestTooLarge, json_body_parse
from leavehome.digits import is_ascii_digits


class BoundedJSONParser(JSONParser):
    """JSON bodies of at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes; larger ones get 413."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None:
            request = (parser_context or {}).get("request")
            declared = request.META.get("CONTENT_LENGTH") if request is not None else None
            if declared and is_ascii_digits(declared) and int(declared) > limit:
                raise RequestTooLarge()
            # The declared length may lie or be missing: never read past the limit.
            raw = stream.read(limit + 1)
            if len(raw) > limit:
                raise RequestTooLarge()
        else:
            raw = stream.read()
        return json_body_parse(raw)
