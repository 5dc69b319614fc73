"""The production settings, plus one bare view for B1's framework floor (``bench/urls.py``).

gunicorn in B1 runs with ``DJANGO_SETTINGS_MODULE=bench.settings``: every other setting, the
middleware included, is the project's, so the bare view measures what any request costs
through the same gunicorn processes before the application does anything.
"""

from leavehome.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
