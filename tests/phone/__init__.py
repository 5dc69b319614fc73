"""A reference phone client for the LeaveHome API, written from docs/protocol.md alone.

It deliberately imports nothing from the server: its own b64u, token derivation, JWS
verification and matching, so the tests and the benchmarks play phones the way an app
written by someone else would. It talks HTTP through an ``httpx.Client`` it is given
(``httpx.Client(transport=httpx.WSGITransport(app=...), base_url="http://testserver")`` in
tests, a ``base_url`` to a live server in benchmarks).
"""

from tests.phone.client import ApiError, Phone, Visit
from tests.phone.codes import CodeRejected, VenueCode, verify_venue_code
from tests.phone.derivation import b64u_decode, b64u_encode, day_token, slot_token, visit_tokens

__all__ = [
    "ApiError",
    "CodeRejected",
    "Phone",
    "VenueCode",
    "Visit",
    "b64u_decode",
    "b64u_encode",
    "day_token",
    "slot_token",
    "verify_venue_code",
    "visit_tokens",
]
