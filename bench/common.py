"""What every benchmark shares: arguments, its own database, the machine, the report.

A benchmark is self-contained: it creates and migrates its own PostgreSQL database (named
by ``--database-url`` or ``BENCH_DATABASE_URL``) before Django is set up, runs with the
production settings (``DEBUG=0``: no query log growing in memory, the real middleware) and
writes its figures, with the machine they were measured on, to docs/benchmarks.md.
"""

import argparse
import contextlib
import datetime as dt
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/lh_bench"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/12"
REPORT_PATH = PROJECT_DIR / "docs" / "benchmarks.md"
SCALES = ("small", "medium", "full")

# The production settings, with fixed bench-only secrets. The throttles are per client IP
# and every simulated phone comes from 127.0.0.1, so they are lifted: in production nginx
# and the per-device throttle stand in front of each phone, not of a load generator.
BENCH_ENVIRONMENT = {
    "DEBUG": "0",
    "SECRET_KEY": "bench-only-secret-key-" + "b" * 40,
    "TRACING_KEY": "YmVuY2gtb25seS10cmFjaW5nLWtleS0zMi1ieXRlcyE=",
    "KEY_ENCRYPTION_KEY": "YmVuY2gtb25seS1rZXktZW5jcnlwdGlvbi1rZXktMzI=",
    "SECURE_SSL_REDIRECT": "0",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SITE_URL": "http://127.0.0.1:8000",
    "OTP_ADMIN_REQUIRED": "0",
    # Nothing is mailed; production settings refuse to start without a mail server otherwise.
    "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    "LOG_LEVEL": "WARNING",
    "THROTTLE_DEVICE_REGISTER_IP": "100000000/hour",
    "THROTTLE_VISIT_UPLOAD_IP": "100000000/hour",
    "THROTTLE_VISIT_UPLOAD_DEVICE": "100000/hour",
    "THROTTLE_DEVICE_READ": "100000000/hour",
    "PYTHONUNBUFFERED": "1",
    # Web Push (B4) to the local receiver on 127.0.0.1 over plain http, with a bench-only VAPID key.
    "PUSH_VAPID_PRIVATE_KEY": "-YTyHI2heQlwGxINS4WvSvo6SffsoRU1KnRcujFzG98",
    "PUSH_VAPID_SUBJECT": "mailto:bench@leavehome.example",
    "PUSH_WEBPUSH_INSECURE_HOSTS": "127.0.0.1",
}


@dataclass
class Options:
    scale: str
    database_url: str
    report: Path | None
    argv: list[str]
    extra: argparse.Namespace = field(default_factory=argparse.Namespace)
    # Figures one benchmark hands to the next in ``bench.run`` (B3 paces its load from B1's rate).
    context: dict = field(default_factory=dict)

    @property
    def command(self) -> str:
        return " ".join(shlex.quote(part) for part in self.argv)


def parse_options(module: str, description: str, add_arguments=None, argv=None) -> Options:
    """Parse the common options (``--scale``, ``--database-url``, ``--report``) and any extra ones."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--scale", choices=SCALES, default="small", help="small: CI smoke run (correctness only)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database of the benchmark, created and migrated if missing",
    )
    parser.add_argument(
        "--report",
        default=None,
        help="markdown file the results are appended to (default: docs/benchmarks.md, except at --scale small; "
        "'-' for none)",
    )
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if args.report == "-":
        report = None
    elif args.report:
        report = Path(args.report)
    else:
        report = None if args.scale == "small" else REPORT_PATH
    shown = ["python", "-m", module, *(sys.argv[1:] if argv is None else argv)]
    return Options(scale=args.scale, database_url=args.database_url, report=report, argv=shown, extra=args)


def bench_environment(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of the benchmark process and of every server it starts."""
    environment = {**os.environ, **BENCH_ENVIRONMENT, "DATABASE_URL": database_url}
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL"):
        environment.pop(name, None)
    environment.update(extra)
    return environment


def database_ensure(database_url: str) -> None:
    """Create the benchmark's PostgreSQL database if it does not exist."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(database_url)
    name = params.get("dbname")
    if not name:
        raise SystemExit(f"--database-url must name a database: {database_url}")
    maintenance = make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(maintenance, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def django_setup(options: Options, **environment: str) -> None:
    """Create and migrate the database, then set Django up in this process with the bench settings
    (plus ``environment``, read by the settings before they are loaded)."""
    if not options.database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("the benchmarks run on PostgreSQL only: pass --database-url postgres://…")
    # A benchmark stopped by SIGTERM (timeout, CI) unwinds like Ctrl-C, so the servers it started stop too.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    database_ensure(options.database_url)
    os.environ.clear()
    os.environ.update(bench_environment(options.database_url, **environment))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leavehome.settings")
    sys.path.insert(0, str(PROJECT_DIR))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    _database_backend_renice()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _database_backend_renice() -> None:
    """Give this process's PostgreSQL backend our own niceness (``nice -n 10 python -m bench…``).

    The bulk loads run in that backend, not in Python; on a machine shared with others'
    test runs, a niced benchmark should not take their CPU through the database either.
    """
    niceness = os.nice(0)
    if niceness <= 0:
        return
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    with contextlib.suppress(OSError):  # a remote server's backend: nothing to do
        os.setpriority(os.PRIO_PROCESS, backend, niceness)


# --- the machine -------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _git_revision() -> str:
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return revision


def machine_description() -> dict[str, str]:
    """CPU, cores, memory, PostgreSQL version and settings, load, date: the context of every figure."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (pg_version,) = cursor.fetchone()
        cursor.execute("SHOW shared_buffers")
        (shared_buffers,) = cursor.fetchone()
    load = os.getloadavg()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{_cpu_model()}, {os.cpu_count()} cores (shared with the team's test runs)",
        "memory": f"{_memory_gib():.1f} GiB",
        "postgresql": f"{pg_version} (shared_buffers {shared_buffers})",
        "python": platform.python_version(),
        "load average at start": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        "revision": _git_revision(),
    }


# --- figures -----------------------------------------------------------------------------


def percentile(values, fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (0 when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


class Stopwatch:
    """``with Stopwatch() as watch: …`` then ``watch.seconds``."""

    def __enter__(self):
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started
        return False


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def fmt(value, digits: int = 0) -> str:
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class Report:
    """The figures of one benchmark run: printed as tables and appended as markdown."""

    def __init__(self, title: str, options: Options):
        self.title = title
        self.options = options
        self.machine = machine_description()
        self.tables: list[tuple[str, list[str], list[list[str]]]] = []
        self.notes: list[str] = []
        self.blocks: list[tuple[str, str]] = []

    def table(self, caption: str, headers: list[str], rows: list[list]) -> None:
        self.tables.append(
            (caption, headers, [[fmt(cell) if not isinstance(cell, str) else cell for cell in row] for row in rows])
        )

    def note(self, text: str) -> None:
        self.notes.append(text)

    def block(self, caption: str, text: str) -> None:
        """A preformatted block (an EXPLAIN plan, a profile)."""
        self.blocks.append((caption, text))

    def markdown(self) -> str:
        lines = [f"### {self.title} — scale {self.options.scale}, {self.machine['date']}", ""]
        lines += [f"Command: `{self.options.command}`", ""]
        lines += ["Machine: " + "; ".join(f"{key} {value}" for key, value in self.machine.items() if key != "date"), ""]
        for caption, headers, rows in self.tables:
            lines += [f"{caption}:", ""]
            lines.append("| " + " | ".join(headers) + " |")
            lines.append("|" + "|".join("---" for _ in headers) + "|")
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines.append("")
        for caption, text in self.blocks:
            lines += [f"{caption}:", "", "```", text.rstrip(), "```", ""]
        lines += [f"- {note}" for note in self.notes]
        if self.notes:
            lines.append("")
        return "\n".join(lines)

    def emit(self) -> None:
        text = self.markdown()
        print(text, flush=True)
        if self.options.report is not None:
            path = self.options.report
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as report_file:
                report_file.write("\n" + text)


def check(condition: bool, message: str) -> None:
    """A correctness assertion of the smoke run; it holds at every scale."""
    if not condition:
        raise BenchFailure(message)


class BenchFailure(AssertionError):
    """A benchmark found wrong results (not slow ones: speed is never asserted)."""
