"""Posters ZIPs are built by a worker, watched on a progress page, downloaded until they expire."""

import datetime as dt
import io
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from tests.conftest import TEST_BROKER_URL, workers_on
from tests.notifications.test_matching_worker import _wait_for
from tests.phone.server import venue_make
from venues import poster_builds
from venues.models import PosterBuild
from venues.services import venue_register

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def owner_client():
    venue = venue_make(name_en="Branch 0")
    for n in (1, 2):
        venue_register(owner=venue.owner, name_en=f"Branch {n}", name_zh=f"分店{n}", category="retail")
    client = Client()
    client.force_login(venue.owner)
    client.owner = venue.owner
    return client


def _zip_names(response) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()


def test_a_build_is_queued_watched_and_downloaded(owner_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the embedded default runs the task here
        started = owner_client.post("/venues/posters/")
    assert started.status_code == 302
    build = PosterBuild.objects.get()
    assert started["Location"] == f"/venues/posters/{build.pk}/"
    assert build.status == PosterBuild.Status.READY and build.done == build.total == 3

    page = owner_client.get(started["Location"]).content.decode()
    assert 'id="download-zip"' in page
    assert "(HKT)" in page  # the expiry, in local time with its zone
    download = owner_client.get(f"/venues/posters/{build.pk}/posters.zip")
    assert download["Content-Type"] == "application/zip"
    assert download["Cache-Control"] == "private, no-store"
    assert sorted(name.split("-")[0:2] for name in _zip_names(download)) == [["Branch", str(n)] for n in range(3)]


def test_while_queued_the_page_refreshes_itself_and_offers_no_download(owner_client):
    owner_client.post("/venues/posters/")  # on_commit not run: no worker has taken it yet
    build = PosterBuild.objects.get()
    page = owner_client.get(f"/venues/posters/{build.pk}/").content.decode()
    assert '<meta http-equiv="refresh"' in page and 'id="download-zip"' not in page
    assert owner_client.get(f"/venues/posters/{build.pk}/posters.zip").status_code == 410


def test_another_owners_build_is_not_found(owner_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post("/venues/posters/")
    build = PosterBuild.objects.get()
    stranger = Client()
    stranger.force_login(venue_make().owner)
    assert stranger.get(f"/venues/posters/{build.pk}/").status_code == 404
    assert stranger.get(f"/venues/posters/{build.pk}/posters.zip").status_code == 404


def test_at_most_n_builds_run_at_once_per_owner(owner_client, settings):
    settings.POSTER_BUILDS_PER_OWNER = 2
    assert [owner_client.post("/venues/posters/").status_code for _ in range(3)] == [302, 302, 429]
    assert PosterBuild.objects.count() == 2
    # Another owner is not held back, and a build lost with its worker stops counting.
    other = Client()
    other.force_login(venue_make().owner)
    assert other.post("/venues/posters/").status_code == 302
    PosterBuild.objects.filter(owner=owner_client.owner).update(created_at=timezone.now() - dt.timedelta(hours=2))
    assert owner_client.post("/venues/posters/").status_code == 302


def test_an_expired_file_is_gone_and_purged(owner_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post("/venues/posters/")
    build = PosterBuild.objects.get()
    assert default_storage.exists(build.file.name)
    PosterBuild.objects.filter(pk=build.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert owner_client.get(f"/venues/posters/{build.pk}/posters.zip").status_code == 410
    assert poster_builds.poster_builds_purge() == 1
    assert not default_storage.exists(build.file.name) and not PosterBuild.objects.exists()


def test_running_the_task_again_rebuilds_only_what_was_not_finished(owner_client):
    owner_client.post("/venues/posters/")
    build = PosterBuild.objects.get()
    # A worker died mid-build: the redelivered task builds the whole file from the start.
    PosterBuild.objects.filter(pk=build.pk).update(status=PosterBuild.Status.BUILDING, done=1)
    poster_builds.poster_build_run(build_id=build.pk)
    build.refresh_from_db()
    assert build.status == PosterBuild.Status.READY and build.done == 3
    finished = build.finished_at
    poster_builds.poster_build_run(build_id=build.pk)  # once more: a ready build is left alone
    build.refresh_from_db()
    assert build.finished_at == finished


@pytest.mark.postgres
@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_a_worker_process_builds_the_zip_the_web_serves(settings, media, owner_client):
    with workers_on(TEST_BROKER_URL, settings, MEDIA_ROOT=str(media)) as start_worker:
        start_worker()
        started = owner_client.post("/venues/posters/")
        build = PosterBuild.objects.get()
        _wait_for(lambda: PosterBuild.objects.get(pk=build.pk).status == PosterBuild.Status.READY, "the ZIP")
    download = owner_client.get(started["Location"] + "posters.zip")
    assert len(_zip_names(download)) == 3
