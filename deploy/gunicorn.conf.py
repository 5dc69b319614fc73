"""gunicorn configuration for the web tier (``gunicorn -c deploy/gunicorn.conf.py leavehome.wsgi``).

Every value can be overridden from the environment (GUNICORN_*), so the same file serves a
laptop, a container and a large host.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# The API is short requests waiting on PostgreSQL: a few processes with threads each use the
# cores without holding a database connection per idle process.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 10000))
max_requests_jitter = 1000
# Requests arrive through nginx; trust its X-Forwarded-* headers only from these addresses.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
limit_request_line = 4094
limit_request_fields = 50
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
# Privacy (docs/privacy.md): no client address is logged beside a request; nginx drops it too.
access_log_format = '"%(r)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
