"""The phone app's API, /api/v1/ (PROTOCOL §4 and §6)."""

from django.urls import path

from notifications.api import case_uploads, uploads, views

app_name = "api"

urlpatterns = [
    path("config", views.ConfigView.as_view(), name="config"),
    path("devices", views.DeviceRegisterView.as_view(), name="devices"),
    path("devices/me", views.DeviceMeView.as_view(), name="device-me"),
    path("devices/me/push", views.DevicePushView.as_view(), name="device-push"),
    path("visits", uploads.visit_upload, name="visits"),
    path("notifications", views.NotificationListView.as_view(), name="notifications"),
    path("notifications/<str:notification_id>", views.NotificationDetailView.as_view(), name="notification"),
    path("exposures", views.ExposureFeedView.as_view(), name="exposures"),
    path("case-uploads", case_uploads.CaseUploadView.as_view(), name="case-uploads"),
]
