"""The project's URLs and ``/bench/bare``: a Django view that does nothing (B1's local limit)."""

from django.http import HttpResponse
from django.urls import path

from leavehome.urls import urlpatterns as project_urlpatterns


def bare(request):
    return HttpResponse(b"", content_type="text/plain")


urlpatterns = [path("bench/bare", bare), *project_urlpatterns]
