"""The real server processes a benchmark measures: gunicorn and Celery workers.

Each is started as a child of the benchmark with the bench environment, waited for until it
answers, and stopped by its own process id at the end. Peak memory is read from
``/proc/<pid>/status`` (``VmHWM``, the resident high-water mark) of the process and every
descendant, so a prefork pool's children are counted one by one.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import PROJECT_DIR


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the ppid follows the last ')'.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children = _children_map()
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def peak_rss_mib(pid: int) -> float:
    """VmHWM of one process in MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids) -> dict[int, float]:
    """User + system CPU seconds used so far by each of ``pids`` (gone ones are left out)."""
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime
    return used


def database_backends() -> list[int]:
    """The PostgreSQL backends connected to this benchmark's database (the servers' and ours)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [row[0] for row in cursor.fetchall()]


class CpuMeter:
    """CPU seconds used between ``start()`` and ``stop()`` by groups of processes, by name."""

    def __init__(self, groups):
        self.groups = groups  # name → callable returning the group's pids now
        self.before: dict[str, dict[int, float]] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self.before = {name: cpu_seconds(pids()) for name, pids in self.groups.items()}

    def stop(self) -> dict[str, float]:
        for name, pids in self.groups.items():
            now = cpu_seconds(pids())
            self.used[name] = sum(seconds - self.before[name].get(pid, 0.0) for pid, seconds in now.items())
        return self.used


class ServerProcess:
    """A started server; ``peak_rss()`` is read before ``stop()`` (the kernel forgets a dead process)."""

    def __init__(self, name: str, process: subprocess.Popen, log_path: Path):
        self.name = name
        self.process = process
        self.log_path = log_path
        self.rss_seen: dict[int, float] = {}

    @property
    def pid(self) -> int:
        return self.process.pid

    def sample_rss(self) -> None:
        """Remember each descendant's peak; call now and then so short-lived children are counted."""
        for pid in descendants(self.pid):
            self.rss_seen[pid] = max(self.rss_seen.get(pid, 0.0), peak_rss_mib(pid))

    def peak_rss(self) -> tuple[float, float]:
        """(largest single process, master) peak RSS in MiB."""
        self.sample_rss()
        workers = [rss for pid, rss in self.rss_seen.items() if pid != self.pid] or [0.0]
        return max(workers), self.rss_seen.get(self.pid, 0.0)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _log_file(name: str) -> tuple[Path, object]:
    directory = Path(os.environ.get("BENCH_LOG_DIR", tempfile.gettempdir())) / "lh-bench-logs"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{os.getpid()}-{uuid.uuid4().hex[:6]}.log"
    return path, path.open("wb")


def http_get(port: int, path: str, timeout: float = 5.0) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": "127.0.0.1"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def gunicorn_start(environment: dict, *, workers: int, threads: int = 1, port: int | None = None) -> tuple:
    """Start gunicorn (sync or gthread workers) on 127.0.0.1; returns (server, port) once /healthz answers 200."""
    port = port or free_port()
    log_path, log = _log_file("gunicorn")
    worker_class = "gthread" if threads > 1 else "sync"
    command = [
        sys.executable, "-m", "gunicorn", "leavehome.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
        "--worker-class", worker_class, "--backlog", "2048", "--timeout", "120",
        "--keep-alive", "30", "--access-logfile", "-" if os.environ.get("BENCH_ACCESS_LOG") else "/dev/null",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=PROJECT_DIR, env=environment, stdout=log, stderr=subprocess.STDOUT)
    server = ServerProcess("gunicorn", process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if http_get(port, "/healthz", timeout=2) == 200:
                # Every worker must have booted before measuring; give late ones a moment.
                time.sleep(0.5)
                return server, port
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"gunicorn did not answer /healthz within 60 s:\n{server.log_tail()}")


def celery_worker_start(environment: dict, *, queue: str, concurrency: int = 1, name: str = "bench") -> ServerProcess:
    """Start ``celery worker`` (prefork) consuming ``queue``; returns once it answers a ping."""
    from celery import Celery

    log_path, log = _log_file(f"celery-{name}")
    hostname = f"{name}-{queue}@%h"
    command = [
        sys.executable, "-m", "celery", "-A", "leavehome", "worker", "--loglevel=WARNING", "--pool=prefork",
        f"--concurrency={concurrency}", "-Q", queue, "-n", hostname, "--without-gossip", "--without-mingle",
        "--without-heartbeat",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=PROJECT_DIR, env=environment, stdout=log, stderr=subprocess.STDOUT)
    server = ServerProcess(f"celery {name}", process, log_path)
    # Not the current app: shared tasks sent by this process must keep going through the project's app.
    probe = Celery(broker=environment["CELERY_BROKER_URL"], set_as_current=False)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"celery worker exited with {process.returncode}:\n{server.log_tail()}")
            replies = probe.control.ping(timeout=1.0)
            if any(host.startswith(f"{name}-{queue}@") for reply in replies for host in reply):
                return server
    finally:
        probe.close()
    server.stop()
    raise RuntimeError(f"celery worker did not answer within 90 s:\n{server.log_tail()}")
