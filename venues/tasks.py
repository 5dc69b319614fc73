"""Celery tasks of the venues app: thin wrappers around venues/poster_builds.py."""

from functools import partial

from celery import shared_task
from django.db import transaction

from venues import poster_builds
from venues.models import PosterBuild

_TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(name="venues.poster_build_run", ignore_result=True, **_TASK_OPTIONS)
def poster_build_run(build_id: str) -> None:
    """Build one posters ZIP (started by an owner; safe to run twice)."""
    poster_builds.poster_build_run(build_id=build_id)


@shared_task(name="venues.poster_builds_purge", ignore_result=True, **_TASK_OPTIONS)
def poster_builds_purge() -> int:
    """Delete expired posters ZIPs (beat, hourly)."""
    return poster_builds.poster_builds_purge()


def poster_build_queue(*, owner, venue_import=None) -> PosterBuild:
    """Start a posters build (poster_builds.poster_build_start) and have a worker run it once
    the new row is committed. Raises PosterBuildsBusy as the service does."""
    with transaction.atomic():
        build = poster_builds.poster_build_start(owner=owner, venue_import=venue_import)
        transaction.on_commit(partial(poster_build_run.delay, str(build.pk)))
    return build
