"""What is kept of logins: django-axes' records, which hold a client address and user agent.

Successful logins are not recorded at all (``AXES_DISABLE_ACCESS_LOG``), failures only in
``AccessAttempt`` for as long as a lockout can need them: the cool-off. The retention purge
deletes every axes record older than that, so with its six-hourly schedule no login's
address or user agent is kept for more than about six hours and a quarter.
"""

import datetime as dt

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.utils import timezone


def login_records_cutoff(now: dt.datetime | None = None) -> dt.datetime:
    """Records from before this moment can no longer count toward a lockout."""
    return (now or timezone.now()) - dt.timedelta(hours=settings.AXES_COOLOFF_TIME)


def login_records_purge(*, now: dt.datetime | None = None) -> int:
    """Delete the axes records (address, user agent) older than the lockout cool-off."""
    cutoff = login_records_cutoff(now)
    deleted = 0
    for model in (AccessAttempt, AccessLog, AccessFailureLog):
        # Few rows (failures of the last hours): one DELETE each is bounded enough.
        deleted += model.objects.filter(attempt_time__lt=cutoff).delete()[0]
    return deleted
