"""The Celery application.

Workers and beat are started with ``celery -A leavehome worker`` / ``beat``. Configuration
comes from Django settings (the ``CELERY_`` namespace), which read the environment. With no
``CELERY_BROKER_URL`` the embedded default runs tasks in-process (eager), so a fresh clone
works without a broker; production and CI always set a real broker.

Logging is Django's (settings.LOGGING, leavehome/logs.py): answering ``setup_logging`` keeps
Celery from installing its own format, so workers and beat write the same JSON lines as the
web tier. The request id of the request that enqueued a task rides in a message header and
is the id of the task's log lines; a task beat started is known by its own task id.
Every task's duration and final state is a metric (leavehome/metrics.py), and each worker's
main process serves its pool's metrics when METRICS_WORKER_PORT is set.
"""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leavehome.settings")

app = Celery("leavehome")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

REQUEST_ID_HEADER = "request_id"


@signals.setup_logging.connect
def _logging_from_django(**kwargs):
    from django.conf import settings

    from leavehome.logs import configure

    configure(settings.LOGGING)


@signals.celeryd_init.connect
def _worker_main_process_init(**kwargs):
    # The worker prints its shutdown notices from signal handlers, bypassing logging.
    import celery.apps.worker

    from leavehome.logs import say_as_json_line
    from leavehome.metrics_files import multiprocess_dir_clear

    celery.apps.worker.safe_say = say_as_json_line
    # Before the pool forks: the previous run's counts must not add to this one's.
    multiprocess_dir_clear()


@signals.worker_ready.connect
def _worker_metrics_serve(**kwargs):
    from django.conf import settings

    from leavehome.metrics import worker_server_start

    if settings.METRICS_TOKEN and settings.METRICS_WORKER_PORT:
        worker_server_start(
            bind=settings.METRICS_WORKER_BIND, port=settings.METRICS_WORKER_PORT, token=settings.METRICS_TOKEN
        )


@signals.beat_init.connect
def _heartbeat_at_once(**kwargs):
    # The first scheduled heartbeat comes only after a full interval; /healthz of a fresh
    # deployment should not wait that long.
    from leavehome.tasks import heartbeat

    heartbeat.apply_async()


@signals.before_task_publish.connect
def _carry_request_id(headers=None, **kwargs):
    from leavehome.logs import request_id_var

    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


_request_id_tokens = {}
_task_started = {}


@signals.task_prerun.connect
def _take_up_request_id(task_id=None, task=None, **kwargs):
    import time

    from leavehome.logs import request_id_var

    _task_started[task_id] = time.perf_counter()
    # An eager task runs inside the request that called it and keeps that request's id.
    if request_id_var.get() is None:
        request_id = getattr(task.request, REQUEST_ID_HEADER, None) or task_id
        _request_id_tokens[task_id] = request_id_var.set(request_id)


@signals.task_postrun.connect
def _drop_request_id(task_id=None, task=None, state=None, **kwargs):
    import time

    from leavehome.logs import request_id_var
    from leavehome.metrics import TASKS

    started = _task_started.pop(task_id, None)
    if started is not None and task is not None:
        TASKS.labels(task=task.name, state=state or "UNKNOWN").observe(time.perf_counter() - started)
    token = _request_id_tokens.pop(task_id, None)
    if token is not None:
        request_id_var.reset(token)
