"""Selectors: reading venues, codes and the public revocation list."""

from django.db.models import F, Q, QuerySet
from django.shortcuts import get_object_or_404

from venues.models import Venue, VenueCode, VenueImport


def venues_of_owner(owner) -> QuerySet[Venue]:
    """An owner's venues, by English name. The only way owner pages list or find venues."""
    return Venue.objects.filter(owner=owner).order_by("name_en", "id")


def venue_of_owner_or_404(*, owner, venue_id) -> Venue:
    """The owner's venue, or Http404 (also when it belongs to someone else: no existence leak)."""
    return get_object_or_404(venues_of_owner(owner), pk=venue_id)


def venue_import_of_owner_or_404(*, owner, import_id) -> VenueImport:
    return get_object_or_404(VenueImport.objects.filter(owner=owner), pk=import_id)


def code_current(venue: Venue) -> VenueCode:
    """The code version a venue's poster shows now."""
    return VenueCode.objects.select_related("venue", "signing_key").get(venue=venue, version=venue.current_version)


def codes_current(venues: QuerySet[Venue]) -> QuerySet[VenueCode]:
    """The current code of each venue in ``venues``, with venue and key joined (posters in bulk)."""
    return (
        VenueCode.objects.filter(venue__in=venues, version=F("venue__current_version"))
        .select_related("venue", "signing_key")
        .order_by("venue__name_en", "venue_id")
    )


def revocations_document() -> dict:
    """PROTOCOL §1's revocation list.

    A venue is listed when some code of it is not valid: it has a version older than the
    current one (``valid_ver`` = current), or it is suspended or closed (``valid_ver`` null).
    """
    listed = (
        Venue.objects.filter(Q(current_version__gt=1) | ~Q(status=Venue.Status.ACTIVE))
        .order_by("id")
        .values_list("id", "status", "current_version")
    )
    revoked = [
        {"sub": str(venue_id), "valid_ver": version if status == Venue.Status.ACTIVE else None}
        for venue_id, status, version in listed.iterator(chunk_size=2000)
    ]
    return {"revoked": revoked}
