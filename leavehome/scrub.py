"""Scrubbing what must never leave a process in a log line or an error report.

The server must not record a client's address beside anything (DESIGN.md), and a token, a
device secret, a one-time code or a link's signature in a log file is a copy of a capability.
The code never logs them on purpose; this is the net under every log line and every error
report, for what a library or an exception message carries along (a URL path with a reset
token, "Invalid HTTP_HOST header: '203.0.113.7'", a lockout message naming an address).

What counts as secret-looking: a run of 20 or more base64url or hex characters with a digit
in it. Every token of the protocol is one (16 random bytes are 22 base64url characters) and
so is every signature; Python names and task names have no digits, and canonical UUIDs
(venue and task ids, not secrets) are left as they are.
"""

import re

ADDRESS = "[address]"
REDACTED = "[redacted]"

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
# Either a "::" abbreviation or at least four groups, so a clock time (12:30:45) is not one.
_IPV6 = re.compile(
    r"(?<![\w:])(?=[0-9A-Fa-f:]*::|(?:[0-9A-Fa-f]{1,4}:){4})[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"
)
_SECRET_LIKE = re.compile(r"(?<![A-Za-z0-9_\-])(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{20,}=*(?![A-Za-z0-9_\-])")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _secret_or_uuid(match: re.Match) -> str:
    text = match.group(0)
    return text if _UUID.fullmatch(text) else REDACTED


def scrub_text(text: str) -> str:
    """``text`` with addresses and secret-looking strings replaced by placeholders."""
    if not text:
        return text
    text = _SECRET_LIKE.sub(_secret_or_uuid, text)
    text = _IPV4.sub(ADDRESS, text)
    return _IPV6.sub(ADDRESS, text)


def scrub_data(value):
    """``value`` (JSON-like: dicts, lists, strings) with every string scrubbed."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {key: scrub_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_data(item) for item in value]
    return value
