"""The public exposure list's stable URLs."""

from django.urls import path

from notifications import public_views

app_name = "public"
urlpatterns = [
    path("exposures/", public_views.exposures_page, name="exposures"),
    path("exposures.json", public_views.exposures_json, name="exposures-json"),
    path("exposures.csv", public_views.exposures_csv, name="exposures-csv"),
]
