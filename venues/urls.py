"""Owners' pages, the code landing page, and the public key and revocation documents."""

app_name = "venues"
urlpatterns = []
