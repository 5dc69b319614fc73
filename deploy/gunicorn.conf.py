"""gunicorn configuration for the web tier (``gunicorn -c deploy/gunicorn.conf.py leavehome.wsgi``).

Every value can be overridden from the environment (GUNICORN_*), so the same file serves a
laptop, a container and a large host.
"""

import errno
import logging
import multiprocessing
import os

from gunicorn.glogging import Logger
from gunicorn.workers.gthread import TConn, ThreadWorker

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# The API is short requests waiting on PostgreSQL: a few processes with threads each use the
# cores without holding a database connection per idle process.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))


class ThreadWorkerBehindProxy(ThreadWorker):
    """gunicorn's gthread worker, handing each new connection to a thread as it is accepted.

    gthread parks a new connection in its poller until the request's first bytes arrive, and
    a worker that stops (recycled by max_requests below, or restarted) closes what is parked
    there unanswered (gunicorn issue #3038): nginx gets a reset, and as it retries no POST,
    an upload gets a 5xx. nginx opens a connection only once it holds the whole request
    (proxy_request_buffering) and writes it at once, so a thread that reads it straight away
    waits for nothing, and a worker finishes everything it has accepted before it exits.
    """

    def accept(self, server, listener):
        try:
            sock, client = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self.enqueue_req(TConn(self.cfg, sock, client, server))


worker_class = ThreadWorkerBehindProxy
threads = int(os.environ.get("GUNICORN_THREADS", 4))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 30
keepalive = 5
# Load Django once in the master and fork the workers from it: a worker recycled by
# max_requests (below) starts in milliseconds instead of spending a second of CPU importing
# the project while it competes with the workers serving requests, and the workers share
# the imported code's memory. A code change therefore needs a restart, not a HUP.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") != "0"
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 10000))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", 1000))
# Requests arrive through nginx; trust its X-Forwarded-* headers only from these addresses.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
limit_request_line = 4094
limit_request_fields = 50
# The app logs every request itself, with its route pattern and request id (leavehome/
# middleware.py), so gunicorn's access log is off unless GUNICORN_ACCESSLOG names a file or
# "-". Privacy (docs/privacy.md): no client address is logged beside a request; nginx drops it too.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None


class AccessLogWhenEnabled(Logger):
    """gunicorn's logger, without the access line built for nothing.

    With a logging configuration (below) gunicorn formats every request's access line (some
    twenty fields, a strftime) and hands it to a logger that drops it when the access log is
    off; on the upload path that was a few per cent of the request's CPU.
    """

    def access(self, resp, req, environ, request_time):
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)


logger_class = AccessLogWhenEnabled
access_log_format = '"%(r)s" %(s)s %(b)s %(M)sms %({x-request-id}i)s'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# gunicorn's own lines are the app's JSON lines (leavehome/logs.py): one format, one clock.
# Its loggers only propagate to the root's single handler, which Django's LOGGING replaces
# with the same one in each worker, so no line is written twice.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "leavehome.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": [], "propagate": True},
        # With a logging configuration gunicorn always logs access; only a level silences it.
        "gunicorn.access": {"level": "INFO" if accesslog else "CRITICAL", "handlers": [], "propagate": True},
    },
}


# Metrics (leavehome/metrics.py): with PROMETHEUS_MULTIPROC_DIR set, every worker writes its
# counts there and GET /metrics adds them up. The master empties the directory as it starts,
# so a restart does not add the previous run's counts; a worker that exits leaves its
# counters (they stay counted) and loses only its live gauges.
def on_starting(server):
    from leavehome.metrics_files import multiprocess_dir_clear

    multiprocess_dir_clear()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
