"""Owners' pages. Each view validates, calls one service or selector, and answers.

Every venue is looked up through ``venue_of_owner_or_404``, so another owner's venue is a
404, the same as one that does not exist.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from leavehome.digits import is_ascii_digits
from leavehome.errors import ServiceError
from venues import poster_builds, selectors, services, tasks
from venues.codes import code_qr_text
from venues.exports import venues_csv_stream
from venues.forms import VenueForm, VenueImportForm
from venues.imports import ImportInvalid, sample_csv, venues_import
from venues.models import Venue
from venues.posters import code_poster_pdf, poster_file_name
from venues.rendering import qr_png, qr_svg

VENUES_PER_PAGE = 50


def _download(content, *, content_type, file_name, streaming=False):
    response_class = StreamingHttpResponse if streaming else HttpResponse
    response = response_class(content, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, file_name)
    response["Cache-Control"] = "private, no-store"
    if streaming:
        response["X-Accel-Buffering"] = "no"  # nginx passes each poster on instead of spooling the ZIP
    return response


@login_required
def venue_list(request):
    # A chain may have thousands of branches: one page at a time.
    number = request.GET.get("page", "")
    paginator = Paginator(selectors.venues_of_owner(request.user), VENUES_PER_PAGE)
    page = paginator.get_page(number if is_ascii_digits(number) else 1)
    return render(request, "venues/list.html", {"page": page, "imports": request.user.venue_imports.all()[:5]})


@login_required
def venue_create(request):
    form = VenueForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            venue = services.venue_register(owner=request.user, **form.cleaned_data)
        except ValidationError as error:  # a ServiceError too (no signing key)
            form.add_error(None, error)
        else:
            messages.success(request, _("Venue registered. Download its poster below."))
            return redirect("venues:detail", venue_id=venue.id)
    return render(request, "venues/form.html", {"form": form})


@login_required
def venue_detail(request, venue_id):
    venue = selectors.venue_of_owner_or_404(owner=request.user, venue_id=venue_id)
    code = selectors.code_current(venue)
    return render(
        request, "venues/detail.html", {"venue": venue, "code": code, "active": venue.status == Venue.Status.ACTIVE}
    )


def _current_code_of_owner(request, venue_id):
    venue = selectors.venue_of_owner_or_404(owner=request.user, venue_id=venue_id)
    return selectors.code_current(venue)


@login_required
def venue_code_png(request, venue_id):
    code = _current_code_of_owner(request, venue_id)
    return _download(
        qr_png(code_qr_text(code)), content_type="image/png", file_name=poster_file_name(code, extension="png")
    )


@login_required
def venue_code_svg(request, venue_id):
    code = _current_code_of_owner(request, venue_id)
    return _download(
        qr_svg(code_qr_text(code)), content_type="image/svg+xml", file_name=poster_file_name(code, extension="svg")
    )


@login_required
def venue_poster(request, venue_id):
    code = _current_code_of_owner(request, venue_id)
    return _download(code_poster_pdf(code), content_type="application/pdf", file_name=poster_file_name(code))


@login_required
@require_POST
def venue_regenerate(request, venue_id):
    venue = selectors.venue_of_owner_or_404(owner=request.user, venue_id=venue_id)
    try:
        code = services.venue_code_regenerate(venue=venue, actor=request.user)
    except services.VenueStateError:
        messages.error(request, _("Only an active venue's code can be regenerated."))
    except ServiceError as error:
        messages.error(request, error.text)
    else:
        messages.success(
            request,
            _("New code version %(version)d issued; older posters no longer work. Print the new poster.")
            % {"version": code.version},
        )
    return redirect("venues:detail", venue_id=venue.id)


@login_required
@require_POST
def venue_close(request, venue_id):
    venue = selectors.venue_of_owner_or_404(owner=request.user, venue_id=venue_id)
    services.venue_close(venue=venue, actor=request.user)
    messages.success(request, _("The venue is closed; its posters no longer work."))
    return redirect("venues:list")


@login_required
def venue_import(request):
    form = VenueImportForm(request.POST or None, request.FILES or None)
    problems = []
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            batch = venues_import(owner=request.user, file_name=upload.name, data=upload.read())
        except ImportInvalid as error:
            problems = error.problems
        except ServiceError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("%(count)d venues registered.") % {"count": batch.venue_count})
            return redirect("venues:import-detail", import_id=batch.pk)
    return render(request, "venues/import.html", {"form": form, "problems": problems}, status=400 if problems else 200)


@login_required
def venue_import_sample(request):
    return _download(sample_csv(), content_type="text/csv; charset=utf-8", file_name="branches-sample.csv")


@login_required
def venue_import_detail(request, import_id):
    batch = selectors.venue_import_of_owner_or_404(owner=request.user, import_id=import_id)
    return render(request, "venues/import_detail.html", {"batch": batch})


@login_required
@require_POST
def poster_build_start(request, import_id=None):
    batch = selectors.venue_import_of_owner_or_404(owner=request.user, import_id=import_id) if import_id else None
    try:
        build = tasks.poster_build_queue(owner=request.user, venue_import=batch)
    except poster_builds.PosterBuildsBusy:
        return render(request, "venues/poster_build_busy.html", {"limit": settings.POSTER_BUILDS_PER_OWNER}, status=429)
    return redirect("venues:poster-build", build_id=build.pk)


@login_required
def poster_build_detail(request, build_id):
    build = poster_builds.poster_build_of_owner_or_404(owner=request.user, build_id=build_id)
    context = {"build": build, "downloadable": poster_builds.poster_build_downloadable(build)}
    return render(request, "venues/poster_build.html", context)


@login_required
def poster_build_download(request, build_id):
    build = poster_builds.poster_build_of_owner_or_404(owner=request.user, build_id=build_id)
    if not poster_builds.poster_build_downloadable(build):
        return render(request, "venues/poster_build.html", {"build": build, "downloadable": False}, status=410)
    name = f"posters-{build.venue_import_id}.zip" if build.venue_import_id else "posters.zip"
    return _download(build.file.open("rb"), content_type="application/zip", file_name=name, streaming=True)


@login_required
def venue_export(request):
    return _download(
        venues_csv_stream(selectors.venues_of_owner(request.user)),
        content_type="text/csv; charset=utf-8",
        file_name="venues.csv",
        streaming=True,
    )
