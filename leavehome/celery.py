"""The Celery application.

Workers and beat are started with ``celery -A leavehome worker`` / ``beat``. Configuration
comes from Django settings (the ``CELERY_`` namespace), which read the environment. With no
``CELERY_BROKER_URL`` the embedded default runs tasks in-process (eager), so a fresh clone
works without a broker; production and CI always set a real broker.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leavehome.settings")

app = Celery("leavehome")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
