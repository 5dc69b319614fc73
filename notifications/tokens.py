"""Visit and exposure token derivation, exactly as PROTOCOL §2 (test vectors in §5).

Time is cut into slots of 900 s; a visit ``[t_in, t_out)`` covers slots
``floor(t_in/900) … floor((t_out-1)/900)``. For venue key ``vk``:

    slot token = HMAC-SHA256(vk, "lhs1:slot:" + decimal(i))[:16]
    day token  = HMAC-SHA256(vk, "lhs1:day:" + "YYYY-MM-DD")[:16]

with one day token per local date on which a covered slot starts. The server uses this to
build exposure tokens for a published case visit (PROTOCOL §3); the phone does the same for
its visits.
"""

import datetime as dt
import hashlib
import hmac
from zoneinfo import ZoneInfo

SLOT_SECONDS = 900
TOKEN_BYTES = 16


def _hmac16(vk: bytes, message: str) -> bytes:
    return hmac.new(vk, message.encode("ascii"), hashlib.sha256).digest()[:TOKEN_BYTES]


def slot_token(vk: bytes, slot: int) -> bytes:
    return _hmac16(vk, f"lhs1:slot:{slot}")


def day_token(vk: bytes, date: dt.date) -> bytes:
    return _hmac16(vk, f"lhs1:day:{date.isoformat()}")


def covered_slots(t_in: int, t_out: int) -> range:
    """The slots a half-open interval ``[t_in, t_out)`` covers (at least one)."""
    first = t_in // SLOT_SECONDS
    last = max(first, (t_out - 1) // SLOT_SECONDS)
    return range(first, last + 1)


def slot_local_date(slot: int, time_zone: ZoneInfo) -> dt.date:
    """The local date on which ``slot`` starts."""
    return dt.datetime.fromtimestamp(slot * SLOT_SECONDS, tz=time_zone).date()


def interval_tokens(vk: bytes, t_in: int, t_out: int, time_zone: ZoneInfo):
    """The slot tokens and day tokens of ``[t_in, t_out)``, each with its local date.

    Returns ``(slot_tokens, day_tokens)``: lists of ``(date, token)``, where a slot token's
    date is the local date its slot starts on.
    """
    slots = covered_slots(t_in, t_out)
    slot_tokens = [(slot_local_date(slot, time_zone), slot_token(vk, slot)) for slot in slots]
    dates = sorted({date for date, _ in slot_tokens})
    return slot_tokens, [(date, day_token(vk, date)) for date in dates]
