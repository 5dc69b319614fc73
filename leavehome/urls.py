from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from leavehome import views
from leavehome.admin import LeaveHomeOTPAdminSite, StaffPasswordLoginForm

if settings.OTP_ADMIN_REQUIRED:
    # Staff log in to the admin with a TOTP code as well (django-otp; on by default in
    # production). Swapping the class keeps every app's registrations on admin.site.
    admin.site.__class__ = LeaveHomeOTPAdminSite
else:
    # Still a password login that takes turns when a username is under attack.
    admin.site.login_form = StaffPasswordLoginForm

admin.site.site_header = _("LeaveHome administration")
admin.site.site_title = _("LeaveHome")
admin.site.index_title = _("Health officials' console")

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: the CSP allows no inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="leavehome/api_docs.html"),
        name="api-docs",
    ),
    path("api/v1/", include("notifications.api.urls")),
    path("", include("notifications.public_urls", namespace="public")),
    path("", include("venues.urls", namespace="venues")),
    # Owner accounts; no namespace: Django's auth views reverse these names.
    path("accounts/", include("venues.account_urls")),
]
