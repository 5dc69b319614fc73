"""The phone app's API, /api/v1/ (PROTOCOL §4)."""

urlpatterns = []
