"""What a venue's code says: its claims, its JWS and the QR text (PROTOCOL §1)."""

from django.conf import settings

from venues import keystore
from venues.models import VenueCode
from venues.signing import jws_sign, venue_claims


def code_claims(code: VenueCode) -> dict:
    """The signed claims of a code version, rebuilt from the stored fields."""
    venue = code.venue
    return venue_claims(
        iss=settings.SITE_URL,
        sub=venue.id,
        ver=code.version,
        iat=int(code.issued_at.timestamp()),
        cat=venue.category,
        name_en=venue.name_en,
        name_zh=venue.name_zh,
        vk=keystore.vk_decrypt(code),
        addr_en=venue.address_en,
        addr_zh=venue.address_zh,
    )


def code_jws(code: VenueCode) -> str:
    """The compact JWS of a code version; the same bytes every time (Ed25519 is deterministic)."""
    private_key = keystore.private_key_load(code.signing_key)
    return jws_sign(code_claims(code), private_key=private_key, kid=code.signing_key.kid)


def qr_prefix() -> str:
    """What every QR text starts with; the app recognises codes by it (``venue_code_prefix``)."""
    return f"{settings.SITE_URL}/c/#"


def code_qr_text(code: VenueCode) -> str:
    """The text the QR code holds: ``{SITE_URL}/c/#{JWS}``."""
    return qr_prefix() + code_jws(code)
