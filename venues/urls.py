"""Owners' pages, the code landing page, and the public key and revocation documents."""

from django.urls import path

from venues import public_views, views

app_name = "venues"
urlpatterns = [
    path("c/", public_views.CodeLandingView.as_view(), name="landing"),
    path(".well-known/jwks.json", public_views.JwksView.as_view(), name="jwks"),
    path("api/v1/revocations", public_views.RevocationsView.as_view(), name="revocations"),
    path("venues/", views.venue_list, name="list"),
    path("venues/new/", views.venue_create, name="create"),
    path("venues/import/", views.venue_import, name="import"),
    path("venues/import/sample.csv", views.venue_import_sample, name="import-sample"),
    path("venues/import/<int:import_id>/", views.venue_import_detail, name="import-detail"),
    path("venues/import/<int:import_id>/posters/", views.poster_build_start, name="import-posters"),
    path("venues/posters/", views.poster_build_start, name="posters"),
    path("venues/posters/<uuid:build_id>/", views.poster_build_detail, name="poster-build"),
    path("venues/posters/<uuid:build_id>/posters.zip", views.poster_build_download, name="poster-build-download"),
    path("venues/export.csv", views.venue_export, name="export"),
    path("venues/<uuid:venue_id>/", views.venue_detail, name="detail"),
    path("venues/<uuid:venue_id>/code.png", views.venue_code_png, name="code-png"),
    path("venues/<uuid:venue_id>/code.svg", views.venue_code_svg, name="code-svg"),
    path("venues/<uuid:venue_id>/poster.pdf", views.venue_poster, name="poster"),
    path("venues/<uuid:venue_id>/regenerate/", views.venue_regenerate, name="regenerate"),
    path("venues/<uuid:venue_id>/close/", views.venue_close, name="close"),
]
