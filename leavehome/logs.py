"""Log lines: one JSON object per event, on one clock, carrying the request id, scrubbed.

Every process formats through these classes: gunicorn (deploy/gunicorn.conf.py), Django
(settings.LOGGING), Celery workers and beat (leavehome/celery.py hands them Django's
configuration). Times are UTC with their offset, whatever the deployment's TIME_ZONE, so
lines of nginx, gunicorn, the app and the workers sort together.

The request id comes from nginx (``X-Request-ID``), is taken up by the request middleware
(leavehome/middleware.py), travels with every task the request enqueues as a Celery message
header and is set again while the worker runs that task (leavehome/celery.py). A task that
beat started carries its own task id instead.

This module must not import Django: gunicorn's master process loads it before any app.
"""

import contextvars
import datetime as dt
import logging

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from leavehome.scrub import scrub_data, scrub_text

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# gunicorn's access log passes its atoms as the record's args; the header atom is named so.
_GUNICORN_REQUEST_ID_ATOM = "{x-request-id}i"


_UNSCRUBBED = frozenset({"time", "level", "logger", "process", "request_id"})


def _request_id(record: logging.LogRecord) -> str | None:
    explicit = getattr(record, "request_id", None)
    if explicit:
        return explicit
    if record.name == "gunicorn.access" and isinstance(record.args, dict):
        value = record.args.get(_GUNICORN_REQUEST_ID_ATOM)
        return value if value and value != "-" else None
    return request_id_var.get()


def _utc_time(record: logging.LogRecord) -> str:
    return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")


class JsonFormatter(_BaseJsonFormatter):
    """``{"time", "level", "logger", "message", "request_id", "process", ...extra}``, scrubbed."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(message)s %(process)d", *args, **kwargs)

    def add_fields(self, log_data, record, message_dict):
        log_data["time"] = _utc_time(record)
        super().add_fields(log_data, record, message_dict)
        log_data["request_id"] = _request_id(record)

    def process_log_record(self, log_data):
        # The message and whatever a library passed as extra (Celery: a task's arguments).
        return {key: value if key in _UNSCRUBBED else scrub_data(value) for key, value in log_data.items()}


class PlainFormatter(logging.Formatter):
    """The same fields as one readable line, for a developer's terminal (DEBUG on)."""

    def format(self, record):
        line = f"{_utc_time(record)} {record.levelname} {record.name} [{_request_id(record) or '-'}] "
        return scrub_text(line + super().format(record))


def configure(logging_settings: dict) -> None:
    """Apply settings.LOGGING (Django's LOGGING_CONFIG, and Celery's processes).

    Python warnings (a library's deprecation, whitenoise's missing directory) become log
    lines too, instead of bare text on stderr between the JSON lines.
    """
    import logging.config

    logging.config.dictConfig(logging_settings)
    logging.captureWarnings(True)


def say_as_json_line(message: str, stream=None, *, logger_name: str = "celery.worker") -> None:
    """Write ``message`` as a JSON log line straight to ``stream``'s descriptor (stderr by default).

    For text printed from a signal handler (Celery's "worker: Warm shutdown"), where taking
    the logging module's locks could deadlock; formatting takes none.
    """
    import os
    import sys

    record = logging.LogRecord(logger_name, logging.WARNING, __file__, 0, message.strip(), None, None)
    line = JsonFormatter().format(record) + "\n"
    os.write((stream or sys.__stderr__).fileno(), line.encode())
