"""b64u and visit token derivation (docs/protocol.md, "Visits and visit tokens")."""

import base64
import datetime as dt
import hashlib
import hmac
from zoneinfo import ZoneInfo

SLOT_SECONDS = 900


def b64u_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def b64u_decode(text: str) -> bytes:
    """base64url without padding; anything else (padding, other alphabets, stray bits) raises ValueError."""
    if "=" in text or len(text) % 4 == 1:
        raise ValueError("not b64u")
    raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    if b64u_encode(raw) != text:
        raise ValueError("not canonical b64u")
    return raw


def _mac(vk: bytes, message: str) -> bytes:
    return hmac.new(vk, message.encode("ascii"), hashlib.sha256).digest()[:16]


def slot_token(vk: bytes, slot: int) -> bytes:
    return _mac(vk, "lhs1:slot:" + str(slot))


def day_token(vk: bytes, date: dt.date) -> bytes:
    return _mac(vk, "lhs1:day:" + date.strftime("%Y-%m-%d"))


def slots(t_in: int, t_out: int) -> list[int]:
    """Slots of the half-open visit [t_in, t_out); at least one."""
    first = t_in // SLOT_SECONDS
    last = (t_out - 1) // SLOT_SECONDS
    return list(range(first, max(first, last) + 1))


def visit_tokens(vk: bytes, t_in: int, t_out: int, time_zone: str) -> dict[dt.date, list[bytes]]:
    """The tokens to upload for one visit, by local date: slot tokens on the date their slot
    starts, and one day token per such date."""
    zone = ZoneInfo(time_zone)
    days: dict[dt.date, list[bytes]] = {}
    for slot in slots(t_in, t_out):
        date = dt.datetime.fromtimestamp(slot * SLOT_SECONDS, zone).date()
        days.setdefault(date, []).append(slot_token(vk, slot))
    for date, tokens in days.items():
        tokens.append(day_token(vk, date))
    return days
