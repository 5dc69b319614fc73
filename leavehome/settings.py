"""LeaveHome settings: every value comes from the environment.

With nothing set, the project runs on the embedded default: DEBUG on, SQLite, tasks run
in-process, console e-mail, development keys. Production sets ``DEBUG=0``; then every
secret must be given (as ``NAME`` or ``NAME_FILE``) and ``manage.py check --deploy`` is
clean. ``deploy/env.example`` lists every variable with its meaning.
"""

from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from leavehome.env import env, env_bool, env_int, env_list
from leavehome.metrics_files import multiprocess_dir_prepare

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", True)
# Production secrets have no default: with DEBUG off, a missing one stops start-up.
_SECRETS_REQUIRED = not DEBUG


def _secret(name, dev_value):
    return env(name, dev_value if DEBUG else None, required=_SECRETS_REQUIRED)


SECRET_KEY = _secret("SECRET_KEY", "dev-only-insecure-secret-key-" + "x" * 40)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# The public base URL: the issuer of venue codes and the prefix of the QR text.
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "leavehome",
    "venues",
    "notifications",
]

MIDDLEWARE = [
    # First: the request id and the request's log line cover even a redirect or a 400.
    "leavehome.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The phone's upload skips everything below (LEAN_ROUTES): it needs none of it.
    "leavehome.middleware.LeanRoutesMiddleware",
    "csp.middleware.CSPMiddleware",
    "leavehome.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "leavehome.middleware.private_pages_middleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A login form refused out of turn answers 429 (leavehome/login_slowdown.py).
    "leavehome.login_slowdown.login_slowdown_middleware",
    # Last, as django-axes asks: it turns a lockout raised during login into a response.
    "axes.middleware.AxesMiddleware",
]

# URL names served by LeanRoutesMiddleware, past the page middleware: requests that need no
# session, language, CSRF, login or messages and arrive too often to pay for them.
LEAN_ROUTES = ["api:visits"]

ROOT_URLCONF = "leavehome.urls"
WSGI_APPLICATION = "leavehome.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
# Default: a SQLite file beside manage.py. Production: postgres://… (psycopg 3).
# Connections are kept (CONN_MAX_AGE) by web threads: a new PostgreSQL backend costs ~8 ms of
# server CPU, more than a whole upload. No health check per request either: it is a
# ``SELECT 1`` round trip on every request; a connection that died (PostgreSQL restarted)
# fails one request with 503 instead, and Django drops it (leavehome/middleware.py).
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600),
        conn_health_checks=env_bool("DATABASE_CONN_HEALTH_CHECKS", False),
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # No JIT compilation: PostgreSQL compiles any plan it estimates costly, and every
    # statement over a day's partition of tens of millions of tokens is estimated so. The
    # matching statements are index probes of a few milliseconds; compiling one took 300-450
    # ms (EXPLAIN ANALYZE at an 80M-token partition, docs/benchmarks.md B2).
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
    # Server-side prepared statements, for the statements run through
    # leavehome.lib.sql.sql_run_prepared only (the upload's ingest): Django's own queries bind
    # on the client and are never prepared. Off for a PgBouncer in transaction mode older
    # than 1.21 or without max_prepared_statements.
    prepared = env_bool("DATABASE_PREPARED_STATEMENTS", True)
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = 5 if prepared else None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttles, login lockouts); must be shared by every web process in production --
CACHE_URL = env("CACHE_URL")
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Authentication -----------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "venues:list"
LOGOUT_REDIRECT_URL = "home"

# How many proxies of ours stand in front of gunicorn (nginx: 1). Throttles and login
# lockouts take the client's address from X-Forwarded-For by this count (leavehome/ratelimit.py).
PROXY_COUNT = env_int("PROXY_COUNT", 0)

# Brute-force protection: lock a username from one address after repeated failures. The
# lockout is keyed by (username, address) so that failures from an attacker's address never
# lock the rightful user out from theirs.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "leavehome.clients.request_client_address"
# Past this many failures of one username from all addresses together, its passwords are
# checked only in turn: once per interval (seconds) for the addresses that failed, once per
# interval for each other address (leavehome/login_slowdown.py).
LOGIN_SLOWDOWN_RATE = env("LOGIN_SLOWDOWN_RATE", "20/hour")
LOGIN_SLOWDOWN_INTERVAL = env_int("LOGIN_SLOWDOWN_INTERVAL", 10)
# Privacy: successful logins leave no record; failures are deleted by the retention purge
# once past the cool-off (leavehome/logins.py).
AXES_DISABLE_ACCESS_LOG = True
# No banner from every process and every manage.py call, no user agents in log lines.
AXES_VERBOSE = False

# Staff must log in to the admin with a second factor in production.
OTP_ADMIN_REQUIRED = env_bool("OTP_ADMIN_REQUIRED", not DEBUG)
OTP_TOTP_ISSUER = "LeaveHome"

# --- Internationalisation -----------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hant", _("Traditional Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", "Asia/Hong_Kong")
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Files the workers write for owners to download (posters ZIPs): a directory every web and
# worker process shares (or set the "default" storage to an object store).
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / "media")))

# --- E-mail (SMTP when EMAIL_HOST is set; console only with DEBUG on) ----------------------
# Production must deliver mail (owners' verification links): with DEBUG off and no
# EMAIL_HOST the process refuses to start, unless EMAIL_BACKEND is set explicitly (a file
# backend for a local trial, say), which `check --deploy` then warns about (leavehome/checks.py).
EMAIL_HOST = env("EMAIL_HOST")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
# Where django.core.mail.backends.filebased.EmailBackend writes one file per message.
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", str(BASE_DIR / "sent-mail"))
EMAIL_BACKEND = env("EMAIL_BACKEND")
if EMAIL_BACKEND is None:
    if EMAIL_HOST:
        EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    elif DEBUG:
        EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    else:
        raise ImproperlyConfigured(
            "DEBUG=0 but EMAIL_HOST is not set: e-mail (owners' verification links) would not be "
            "delivered. Set EMAIL_HOST, or EMAIL_BACKEND explicitly (docs/operations.md)."
        )
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "LeaveHome <no-reply@leavehome.example>")

# --- Security (production) ----------------------------------------------------------------
# TLS ends at nginx, which sets X-Forwarded-Proto (deploy/nginx.conf).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# INSECURE_PLAIN_HTTP=1 serves production settings over plain HTTP: no redirect, no HSTS,
# cookies without the Secure flag (or no browser or client would send them back over http).
# For a local trial on one's own machine only (docs/operations.md); every process logs a
# warning as it starts and check --deploy warns (leavehome/checks.py).
INSECURE_PLAIN_HTTP = env_bool("INSECURE_PLAIN_HTTP", False)
_HTTPS_ONLY = not DEBUG and not INSECURE_PLAIN_HTTP
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _HTTPS_ONLY)
# Load balancers probe health over plain HTTP on the private network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if _HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _HTTPS_ONLY
SECURE_HSTS_PRELOAD = _HTTPS_ONLY
SESSION_COOKIE_SECURE = _HTTPS_ONLY
CSRF_COOKIE_SECURE = _HTTPS_ONLY
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response (django-csp): scripts, styles and everything else
# only from our own origin, no inline script anywhere (the API docs use drf-spectacular's split
# view for that reason); data: images for the Swagger UI's icons.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
SECURE_REFERRER_POLICY = "same-origin"
# Request bodies: the largest legitimate one is a full visit upload (see PROTOCOL §4).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Keys ---------------------------------------------------------------------------------
# TRACING_KEY encrypts venue keys (vk) at rest; KEY_ENCRYPTION_KEY encrypts the private
# halves of the code signing keys. Each is 32 random bytes, base64url; generate with
#   python -c "import secrets,base64;print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"
TRACING_KEY = _secret("TRACING_KEY", "ZGV2LW9ubHktdHJhY2luZy1rZXktMzItYnl0ZXMhISE=")
KEY_ENCRYPTION_KEY = _secret("KEY_ENCRYPTION_KEY", "ZGV2LW9ubHkta2V5LWVuY3J5cHRpb24ta2V5LTMyYnk=")

# --- Protocol (docs/protocol.md; served at GET /api/v1/config) ----------------------------
LEAVEHOME_DEFAULT_VISIT_SECONDS = env_int("LEAVEHOME_DEFAULT_VISIT_SECONDS", 4 * 3600)
LEAVEHOME_MAX_VISIT_SECONDS = env_int("LEAVEHOME_MAX_VISIT_SECONDS", 12 * 3600)
LEAVEHOME_RETENTION_DAYS = env_int("LEAVEHOME_RETENTION_DAYS", 31)
LEAVEHOME_MAX_TOKENS_PER_UPLOAD = env_int("LEAVEHOME_MAX_TOKENS_PER_UPLOAD", 5000)
# A confirmed case's upload (PROTOCOL §6): how long a one-time code stays valid, and how
# many visits one upload may hold (a month of a busy life; more is not a phone's history).
LEAVEHOME_CASE_UPLOAD_CODE_HOURS = env_int("LEAVEHOME_CASE_UPLOAD_CODE_HOURS", 24)
LEAVEHOME_MAX_CASE_UPLOAD_VISITS = env_int("LEAVEHOME_MAX_CASE_UPLOAD_VISITS", 200)

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "EXCEPTION_HANDLER": "leavehome.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
    # Per-IP throttles trust exactly this many proxies' X-Forwarded-For entries (nginx: 1).
    "NUM_PROXIES": PROXY_COUNT,
    "DEFAULT_THROTTLE_RATES": {
        "device_register_ip": env("THROTTLE_DEVICE_REGISTER_IP", "30/hour"),
        "visit_upload_device": env("THROTTLE_VISIT_UPLOAD_DEVICE", "120/hour"),
        "visit_upload_ip": env("THROTTLE_VISIT_UPLOAD_IP", "6000/hour"),
        "device_read": env("THROTTLE_DEVICE_READ", "600/hour"),
        # The public exposure list (page, JSON, CSV) per address: shared caches serve most readers.
        "public_list_ip": env("THROTTLE_PUBLIC_LIST_IP", "300/minute"),
        # Case uploads are rare (one per confirmed case) and guess codes when abused: a few per
        # address, and a ceiling for everyone together that guessing cannot get past.
        "case_upload_ip": env("THROTTLE_CASE_UPLOAD_IP", "10/hour"),
        "case_upload_global": env("THROTTLE_CASE_UPLOAD_GLOBAL", "3000/hour"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LeaveHome API",
    "DESCRIPTION": "The phone app's API (protocol lhs1). See docs/protocol.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Celery -------------------------------------------------------------------------------
# No broker configured: run tasks in-process (the embedded default). Production and CI set
# CELERY_BROKER_URL to Redis or RabbitMQ.
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
if CELERY_BROKER_URL is None:
    CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "celery")
# A task is acknowledged only when it has finished, and re-queued if its worker dies, so
# work is never lost; every task is written to be safe to run twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection around every task unless this is set:
# it then closes it only every this many tasks, so a worker process keeps one PostgreSQL
# backend instead of starting one per task (tests/notifications/test_matching_worker.py).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_BEAT_SCHEDULE = {}

# --- Venues ---------------------------------------------------------------------------------
# A TrueType CJK font for posters (reportlab cannot embed CFF fonts such as Noto CJK);
# Debian: apt-get install fonts-wqy-zenhei.
POSTER_CJK_FONT = env("POSTER_CJK_FONT", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
# The express channel's upper bound on branches per CSV (LeaveHomeSafe's largest chains).
VENUE_IMPORT_MAX_ROWS = env_int("VENUE_IMPORT_MAX_ROWS", 5000)
# Posters ZIPs are built by workers: at most this many at once per owner, each file kept this
# many hours for download (venues/poster_builds.py).
POSTER_BUILDS_PER_OWNER = env_int("POSTER_BUILDS_PER_OWNER", 2)
POSTER_BUILD_HOURS = env_int("POSTER_BUILD_HOURS", 24)
# How long an e-mail verification or password reset link stays valid (Django's setting).
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3 * 24 * 3600)
# Account e-mails (sign-up verification, password reset) each cost a mail and can flood an
# inbox: at most this rate to one e-mail address, and from one client address.
ACCOUNT_MAIL_RATE_ADDRESS = env("ACCOUNT_MAIL_RATE_ADDRESS", "3/hour")
ACCOUNT_MAIL_RATE_CLIENT = env("ACCOUNT_MAIL_RATE_CLIENT", "10/hour")
# A locked-out owner gets a page in their language pointing at password reset (HTTP 429).
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"

# --- Logging (leavehome/logs.py) -----------------------------------------------------------
# One JSON object per line on stderr, times in UTC with their offset, each with the request
# id, addresses and secret-looking strings scrubbed; gunicorn (deploy/gunicorn.conf.py) and
# Celery (leavehome/celery.py) write the same lines. LOG_FORMAT=plain gives readable lines,
# the default with DEBUG on.
LOG_FORMAT = env("LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}.")
# One line per request (leavehome/middleware.py); 0 leaves them to nginx's access log when
# a peak makes even that cost count. The request metrics are kept either way.
LOG_REQUESTS = env_bool("LOG_REQUESTS", True)
LOGGING_CONFIG = "leavehome.logs.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "leavehome.logs.JsonFormatter"},
        "plain": {"()": "leavehome.logs.PlainFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Push delivery (notifications/push; docs/push.md) -------------------------------------
# Each push service is optional: a missing credential disables that kind of channel, with one
# log line per worker process, and its phones poll GET /api/v1/notifications instead.
# Web Push: the VAPID key pair's private half (PEM, or base64url raw/DER; or ..._FILE) and
# the contact the push services may write to ("mailto:…" or "https://…").
PUSH_VAPID_PRIVATE_KEY = env("PUSH_VAPID_PRIVATE_KEY")
PUSH_VAPID_SUBJECT = env("PUSH_VAPID_SUBJECT")
# The SSRF guard: a Web Push endpoint must be https on one of these hosts ("*.x" matches
# subdomains of x). Defaults: Chrome, Firefox, Safari and Edge.
PUSH_WEBPUSH_ALLOWED_HOSTS = env_list(
    "PUSH_WEBPUSH_ALLOWED_HOSTS",
    ["fcm.googleapis.com", "updates.push.services.mozilla.com", "web.push.apple.com", "*.notify.windows.com"],
)
# Hosts that may receive Web Push over plain http on any port: for local test receivers
# only. Empty unless set; never set it in production.
PUSH_WEBPUSH_INSECURE_HOSTS = env_list("PUSH_WEBPUSH_INSECURE_HOSTS")
# FCM HTTP v1: a service-account JSON key file; the project defaults to its project_id, the
# OAuth token endpoint to its token_uri. The URLs can point at a local peer in tests.
PUSH_FCM_CREDENTIALS_FILE = env("PUSH_FCM_CREDENTIALS_FILE")
PUSH_FCM_PROJECT_ID = env("PUSH_FCM_PROJECT_ID")
PUSH_FCM_API_URL = env("PUSH_FCM_API_URL", "https://fcm.googleapis.com")
PUSH_FCM_TOKEN_URL = env("PUSH_FCM_TOKEN_URL")
# APNs, token-based: the .p8 key file, its key id, the team id and the app's bundle id.
# Development builds use https://api.sandbox.push.apple.com. PUSH_APNS_CA_FILE adds a CA to
# trust (a local test peer); unset, the system's CAs are used.
PUSH_APNS_KEY_FILE = env("PUSH_APNS_KEY_FILE")
PUSH_APNS_KEY_ID = env("PUSH_APNS_KEY_ID")
PUSH_APNS_TEAM_ID = env("PUSH_APNS_TEAM_ID")
PUSH_APNS_TOPIC = env("PUSH_APNS_TOPIC")
PUSH_APNS_URL = env("PUSH_APNS_URL", "https://api.push.apple.com")
PUSH_APNS_CA_FILE = env("PUSH_APNS_CA_FILE")
# How long a push service keeps an undelivered message: a day-old warning is still worth it.
PUSH_TTL_SECONDS = env_int("PUSH_TTL_SECONDS", 24 * 3600)
PUSH_TIMEOUT_SECONDS = env_int("PUSH_TIMEOUT_SECONDS", 10)
# Devices per delivery task, and concurrent requests per task (one HTTP client per kind).
PUSH_BATCH_DEVICES = env_int("PUSH_BATCH_DEVICES", 500)
PUSH_CONCURRENCY = env_int("PUSH_CONCURRENCY", 16)
# Transient failures: exponential backoff with jitter from the base, capped, for at most
# PUSH_MAX_ATTEMPTS attempts; a push service's Retry-After is always honoured.
PUSH_MAX_ATTEMPTS = env_int("PUSH_MAX_ATTEMPTS", 8)
PUSH_RETRY_BASE_SECONDS = float(env("PUSH_RETRY_BASE_SECONDS", "15"))
PUSH_RETRY_MAX_SECONDS = env_int("PUSH_RETRY_MAX_SECONDS", 3600)
# A claimed push not finished after this long (its worker died) is taken over by the reaper,
# which runs every minute and leaves alone what became due less than the grace ago.
PUSH_CLAIM_SECONDS = env_int("PUSH_CLAIM_SECONDS", 300)
PUSH_REAP_GRACE_SECONDS = env_int("PUSH_REAP_GRACE_SECONDS", 30)
# The canary (notifications/push/canary.py): device ids of operators' own phones, one per
# provider, that get a test push every PUSH_CANARY_SECONDS (0: never) to prove delivery works.
PUSH_CANARY_DEVICES = env_list("PUSH_CANARY_DEVICES")
PUSH_CANARY_SECONDS = env_int("PUSH_CANARY_SECONDS", 3600)
CELERY_IMPORTS = ["notifications.push.tasks"]
CELERY_BEAT_SCHEDULE["push-reap"] = {"task": "notifications.push.tasks.push_reap", "schedule": 60.0}
if PUSH_CANARY_DEVICES and PUSH_CANARY_SECONDS:
    CELERY_BEAT_SCHEDULE["push-canary"] = {
        "task": "notifications.push.tasks.push_canary",
        "schedule": float(PUSH_CANARY_SECONDS),
    }

# --- Matching core and retention (notifications/tasks.py) ----------------------------------
# Hourly: create the visit-token partitions of every date an upload may name (idempotent);
# every 6 hours: the retention purge (idempotent; drops whole partitions on PostgreSQL).
CELERY_BEAT_SCHEDULE["notifications-partitions-ahead"] = {
    "task": "notifications.visit_token_partitions_ahead",
    "schedule": 3600.0,
}
# Every minute: fresh planner statistics for the partitions uploads are filling (a tenth
# grown since the last ANALYZE), so the sweep keeps probing indexes as today's partition
# grows, even where the server's autovacuum is off or behind.
CELERY_BEAT_SCHEDULE["notifications-partitions-analyze"] = {
    "task": "notifications.visit_token_partitions_analyze",
    "schedule": 60.0,
    "options": {"expires": 60.0},
}
# The upload-matching sweep (notifications/matching.py): every UPLOAD_SWEEP_INTERVAL seconds
# a sweep drains the backlog, UPLOAD_SWEEP_BATCH uploads per statement, for at most
# UPLOAD_SWEEP_SECONDS before it queues itself again. A tick no worker took within five
# intervals is dropped (``expires``): a later one does the same work, and a backlog of ticks
# cannot pile up in the broker while the workers are down.
UPLOAD_SWEEP_INTERVAL = float(env("UPLOAD_SWEEP_INTERVAL", "1.0"))
UPLOAD_SWEEP_BATCH = env_int("UPLOAD_SWEEP_BATCH", 1000)
UPLOAD_SWEEP_SECONDS = float(env("UPLOAD_SWEEP_SECONDS", "20"))
CELERY_BEAT_SCHEDULE["notifications-uploads-sweep"] = {
    "task": "notifications.uploads_sweep",
    "schedule": UPLOAD_SWEEP_INTERVAL,
    "options": {"expires": max(UPLOAD_SWEEP_INTERVAL, 1.0) * 5},
}
# The publication sweep (notifications/tasks.py, ``publications_sweep``): each publication
# queues one sweep per chunk on its commit, so beat's tick every PUBLICATION_SWEEP_INTERVAL
# seconds only finds what a broker outage kept from being queued: chunks of the publication
# backlog, and cases officials asked to publish more than PUBLISH_REQUEST_GRACE_SECONDS ago
# that no worker published (the grace leaves a request to its own task first).
PUBLICATION_SWEEP_INTERVAL = float(env("PUBLICATION_SWEEP_INTERVAL", "5.0"))
PUBLISH_REQUEST_GRACE_SECONDS = float(env("PUBLISH_REQUEST_GRACE_SECONDS", "10"))
CELERY_BEAT_SCHEDULE["notifications-publications-sweep"] = {
    "task": "notifications.publications_sweep",
    "schedule": PUBLICATION_SWEEP_INTERVAL,
    "options": {"expires": max(PUBLICATION_SWEEP_INTERVAL, 1.0) * 5},
}
CELERY_BEAT_SCHEDULE["venues-poster-builds-purge"] = {"task": "venues.poster_builds_purge", "schedule": 3600.0}
CELERY_BEAT_SCHEDULE["notifications-retention-purge"] = {
    "task": "notifications.retention_purge",
    "schedule": 6 * 3600.0,
}

# --- Health officials' console (docs/console.md) --------------------------------------------
# Days a case visit stays on the public exposure list after its window ends.
PUBLIC_EXPOSURE_LIST_DAYS = env_int("PUBLIC_EXPOSURE_LIST_DAYS", 14)
# Cluster candidates: venues two or more cases visited within this many days (the page's default).
CLUSTER_CANDIDATE_DAYS = env_int("CLUSTER_CANDIDATE_DAYS", 14)
# A publication estimated to notify more devices than this waits for a second official's
# approval (notifications/safety.py); 0 turns the rule off.
PUBLICATION_APPROVAL_THRESHOLD = env_int("PUBLICATION_APPROVAL_THRESHOLD", 10000)

# --- Metrics (leavehome/metrics.py; docs/operations.md, Metrics) ---------------------------
# The bearer token Prometheus sends to GET /metrics and to the workers' endpoint; unset, both
# are off. Multiprocess mode needs PROMETHEUS_MULTIPROC_DIR in the environment of gunicorn
# and of each worker (a directory of its own for each), read by prometheus_client itself;
# an empty value is off and a missing directory is made, here, before anything imports it.
multiprocess_dir_prepare()
METRICS_TOKEN = env("METRICS_TOKEN")
# Each worker's main process serves its pool's metrics here (unset: no worker endpoint).
METRICS_WORKER_PORT = env_int("METRICS_WORKER_PORT", 0) or None
METRICS_WORKER_BIND = env("METRICS_WORKER_BIND", "127.0.0.1")
# The queues whose depth is reported (the default queue unless listed).
METRICS_QUEUES = env_list("METRICS_QUEUES", [CELERY_TASK_DEFAULT_QUEUE])

# --- Liveness (/healthz; docs/operations.md, Health) ---------------------------------------
# Beat sends a heartbeat this often (and once as it starts); a worker records it. /healthz
# answers 503 when the last one is older than HEALTHZ_BEAT_MAX_AGE_SECONDS (0: not checked,
# for a web tier whose load balancer must not care), or when the oldest upload waiting to be
# matched is older than HEALTHZ_BACKLOG_MAX_AGE_SECONDS (0: not checked), or the oldest
# publication chunk or request waiting for a worker older than
# HEALTHZ_PUBLICATION_BACKLOG_MAX_AGE_SECONDS (0: not checked).
HEARTBEAT_SECONDS = float(env("HEARTBEAT_SECONDS", "60"))
HEALTHZ_BEAT_MAX_AGE_SECONDS = env_int("HEALTHZ_BEAT_MAX_AGE_SECONDS", 300)
HEALTHZ_BACKLOG_MAX_AGE_SECONDS = env_int("HEALTHZ_BACKLOG_MAX_AGE_SECONDS", 900)
HEALTHZ_PUBLICATION_BACKLOG_MAX_AGE_SECONDS = env_int("HEALTHZ_PUBLICATION_BACKLOG_MAX_AGE_SECONDS", 300)
CELERY_BEAT_SCHEDULE["leavehome-heartbeat"] = {"task": "leavehome.heartbeat", "schedule": HEARTBEAT_SECONDS}

# --- Error tracking (leavehome/sentry.py; docs/operations.md, Errors) ----------------------
# Off unless SENTRY_DSN is set. No personal data: no users, cookies, bodies or addresses;
# every event is scrubbed of tokens before it is sent.
SENTRY_DSN = env("SENTRY_DSN")
if SENTRY_DSN:
    from leavehome.sentry import sentry_init

    sentry_init(
        dsn=SENTRY_DSN,
        environment=env("SENTRY_ENVIRONMENT", "production"),
        traces_sample_rate=float(env("SENTRY_TRACES_SAMPLE_RATE", "0")),
    )
