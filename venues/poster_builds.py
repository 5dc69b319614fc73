"""Posters ZIPs built by a worker (services and selectors).

A chain's ZIP of 200 posters held a web thread for 13.5 s, and 5,000 for six minutes, with
no limit on how many ran at once. Now a request only starts a build (at most
``POSTER_BUILDS_PER_OWNER`` running per owner); a worker renders the posters into a file in
the default storage, counting its progress in the row as it goes; the owner's page shows the
progress and then a download link. The file expires after ``POSTER_BUILD_HOURS`` and is
deleted by an hourly purge.

The build task may run twice (redelivery after a worker died): a build that is ready is left
alone, one found half-built is built again from the start, so the file is always whole.
"""

import datetime as dt
import logging
import tempfile

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone

from venues.models import PosterBuild, Venue, VenueImport
from venues.posters import posters_zip_stream
from venues.selectors import codes_current

logger = logging.getLogger(__name__)

# Progress is written to the row every this many posters (a few times a second at most).
PROGRESS_EVERY = 25
# A build queued or running this long ago was lost with its worker: it no longer counts
# toward the owner's limit, and the purge removes it.
STALE_AFTER = dt.timedelta(hours=1)
ACTIVE = (PosterBuild.Status.QUEUED, PosterBuild.Status.BUILDING)


class PosterBuildsBusy(Exception):
    """The owner already has as many builds running as allowed."""


def _active_builds(owner, now):
    return PosterBuild.objects.filter(owner=owner, status__in=ACTIVE, created_at__gte=now - STALE_AFTER)


def poster_build_start(*, owner, venue_import: VenueImport | None = None) -> PosterBuild:
    """A new queued build of the current posters of the owner's active venues (or of one import's).

    Raises :class:`PosterBuildsBusy` when the owner has ``POSTER_BUILDS_PER_OWNER`` builds
    running. Queueing its task is the caller's (venues.tasks.poster_build_queue).
    """
    now = timezone.now()
    with transaction.atomic():
        # One owner's concurrent requests queue here, so two cannot both take the last slot.
        get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
        if _active_builds(owner, now).count() >= settings.POSTER_BUILDS_PER_OWNER:
            raise PosterBuildsBusy
        return PosterBuild.objects.create(owner=owner, venue_import=venue_import)


def _codes(build: PosterBuild):
    venues = Venue.objects.filter(owner=build.owner_id, status=Venue.Status.ACTIVE)
    if build.venue_import_id is not None:
        venues = venues.filter(import_batch=build.venue_import_id)
    return codes_current(venues)


def _counted(build_id, codes):
    for done, code in enumerate(codes.iterator(chunk_size=100), start=1):
        yield code
        if done % PROGRESS_EVERY == 0:
            PosterBuild.objects.filter(pk=build_id).update(done=done)


def poster_build_run(*, build_id) -> None:
    """Render the build's posters into a ZIP in storage and mark it ready (the task's body)."""
    with transaction.atomic():
        build = PosterBuild.objects.select_for_update().filter(pk=build_id).first()
        if build is None or build.status in (PosterBuild.Status.READY, PosterBuild.Status.FAILED):
            return  # purged meanwhile, or a redelivery of a finished build
        codes = _codes(build)
        build.status, build.done, build.total = PosterBuild.Status.BUILDING, 0, codes.count()
        build.save(update_fields=["status", "done", "total"])
    try:
        with tempfile.TemporaryFile() as spool:
            for chunk in posters_zip_stream(_counted(build.pk, codes)):
                spool.write(chunk)
            spool.seek(0)
            name = default_storage.save(f"posters/{build.pk}.zip", File(spool))
    except Exception:
        logger.exception("posters ZIP %s failed", build.pk)
        PosterBuild.objects.filter(pk=build.pk).update(status=PosterBuild.Status.FAILED, finished_at=timezone.now())
        raise
    now = timezone.now()
    PosterBuild.objects.filter(pk=build.pk).update(
        status=PosterBuild.Status.READY,
        done=build.total,
        file=name,
        finished_at=now,
        expires_at=now + dt.timedelta(hours=settings.POSTER_BUILD_HOURS),
    )


def poster_build_of_owner_or_404(*, owner, build_id) -> PosterBuild:
    """The owner's build; another owner's is a 404, the same as one that does not exist."""
    return get_object_or_404(PosterBuild.objects.filter(owner=owner), pk=build_id)


def poster_build_downloadable(build: PosterBuild, *, now=None) -> bool:
    now = now or timezone.now()
    return build.status == PosterBuild.Status.READY and build.expires_at is not None and build.expires_at > now


def poster_builds_purge(*, now=None) -> int:
    """Delete expired builds with their files, and builds lost with their worker; returns how many."""
    now = now or timezone.now()
    expired = PosterBuild.objects.filter(expires_at__lte=now) | PosterBuild.objects.filter(
        status__in=ACTIVE, created_at__lt=now - STALE_AFTER
    )
    removed = 0
    for build in expired.iterator():
        if build.file:
            default_storage.delete(build.file.name)
        build.delete()
        removed += 1
    return removed
