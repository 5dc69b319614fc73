"""Test helpers that set up this server's side for the phone API tests.

Not part of the reference client (which imports nothing of the server): these make devices,
venues and notifications with the server's own services and models, and connect a Phone
to the app in-process.
"""

import datetime as dt
import itertools

import httpx
from django.contrib.auth import get_user_model
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.utils import timezone

from notifications.devices import device_register
from notifications.models import Case, CaseVisit, Notification
from tests.phone.client import Phone
from venues.keys import NoActiveSigningKey, signing_key_active, signing_key_create
from venues.services import venue_register

_serial = itertools.count(1)


def wsgi_app_in_test(handler: WSGIHandler | None = None):
    """The WSGI app, minus the connection closing at the end of each request.

    Django closes the database connection when a request finishes, which would end the test's
    transaction; its own test client detaches that signal the same way.
    """

    handler = handler or WSGIHandler()

    def app(environ, start_response):
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            result = handler(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                result.close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)

    return app


def phone_http() -> httpx.Client:
    """An httpx client that calls the app in-process (same thread, same test transaction)."""
    return httpx.Client(transport=httpx.WSGITransport(app=wsgi_app_in_test()), base_url="http://testserver")


def in_process_phone(**kwargs) -> Phone:
    return Phone(phone_http(), **kwargs)


def device_with_secret():
    """A registered device and its secret, through the registration service."""
    return device_register()


def bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def venue_make(**fields):
    """A venue with version 1 of its code (needs an active signing key)."""
    try:
        signing_key_active()
    except NoActiveSigningKey:
        signing_key_create()
    number = next(_serial)
    owner = get_user_model().objects.create_user(username=f"owner{number}@example.com", password="x" * 12)
    defaults = {"name_en": f"Venue {number}", "name_zh": f"場所{number}", "category": "catering"}
    return venue_register(owner=owner, **{**defaults, **fields})


def venue_qr_text(venue, *, issued_days_ago: int = 3) -> str:
    """The QR text of the venue's current code, its issue date moved back so that case
    windows of the last few days can be published against it (codes count only for windows
    ending after their issue, PROTOCOL §3)."""
    from venues.codes import code_qr_text
    from venues.models import VenueCode

    VenueCode.objects.filter(venue=venue).update(issued_at=timezone.now() - dt.timedelta(days=issued_days_ago))
    return code_qr_text(VenueCode.objects.get(venue=venue, version=venue.current_version))


def official():
    return get_user_model().objects.create_user(username=f"official{next(_serial)}@example.com", password="x" * 12)


def case_publish_at(*, venue, start: dt.datetime, minutes: int = 60, **case_fields) -> CaseVisit:
    """Publish a case with one visit through the publication service and its matching; returns the visit."""
    from notifications.tasks import case_publish_and_match

    visit = case_visit_make(venue=venue, start=start, minutes=minutes, status=Case.Status.DRAFT, **case_fields)
    case_publish_and_match(case=visit.case, actor=official())
    return visit


def uploads_swept() -> int:
    """Sweep the upload backlog until it is empty, as beat's workers would; returns the uploads matched."""
    from notifications.tasks import uploads_sweep

    return uploads_sweep()


def case_visit_make(*, venue, start: dt.datetime, minutes: int = 60, status=Case.Status.PUBLISHED, **case_fields):
    """A case with one visit; no exposure tokens (publication makes those)."""
    case = Case.objects.create(
        reference=f"C{next(_serial)}", confirmed_on=timezone.localdate(), status=status, **case_fields
    )
    return CaseVisit.objects.create(case=case, venue=venue, start=start, end=start + dt.timedelta(minutes=minutes))


def notification_make(*, device, case_visit, risk="high", **fields):
    return Notification.objects.create(device=device, case_visit=case_visit, risk=risk, **fields)


def rows_referencing_device(device_id) -> dict[str, int]:
    """For every table with a device column, how many rows name ``device_id``.

    Read from the database catalogue, not from the models, so a table added by anyone
    (push deliveries, partitions) is counted too. Compared as text because other apps'
    ``device_id`` columns (django-otp's) are integers.
    """
    counts = {}
    value = device_id.hex if connection.vendor == "sqlite" else str(device_id)
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [column.name for column in connection.introspection.get_table_description(cursor, table)]
            for column in columns:
                if column == "device_id" or (table == "notifications_device" and column == "id"):
                    cursor.execute(
                        # Names from the catalogue, quoted by the backend; the value is a parameter.
                        f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)} "
                        f"WHERE CAST({connection.ops.quote_name(column)} AS TEXT) = %s",
                        [value],
                    )
                    counts[f"{table}.{column}"] = cursor.fetchone()[0]
    return counts


def row_counts() -> dict[str, int]:
    """Rows in every table of the database, for "nothing was written" assertions."""
    counts = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            # The name comes from the catalogue and is quoted by the backend.
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def database_contents() -> dict[str, list]:
    """Every row of every table, for "the database is unchanged" assertions (updates too)."""
    contents = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            # The name comes from the catalogue and is quoted by the backend.
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            contents[table] = sorted(repr(row) for row in cursor.fetchall())
    return contents
