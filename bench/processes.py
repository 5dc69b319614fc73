"""The real server processes a benchmark measures: gunicorn and Celery workers.

Each is started as a child of the benchmark with the bench environment, waited for until it
answers, and stopped by its own process id at the end. Peak memory is read from
``/proc/<pid>/status`` (``VmHWM``, the resident high-water mark) of the process and every
descendant, so a prefork pool's children are counted one by one.
"""

import contextlib
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


def _stat_fields(pid: int) -> list[str] | None:
    try:
        # The command name is in parentheses and may hold spaces: the fields follow the last ')'.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by ``root``'s process tree, including processes that have exited.

    Each live process counts its own utime + stime plus cutime + cstime, the CPU of the
    children it has reaped (and, recursively, theirs): the postmaster reaps its backends,
    gunicorn's master its recycled workers, Celery's main process its pool children. So a
    PostgreSQL backend that connects and exits between two readings is still counted, which
    sampling the processes alive at the end never sees.
    """
    total = 0
    for pid in descendants(root):
        fields = _stat_fields(pid)
        if fields:
            total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / _CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one live process (0 if it is gone)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS if fields else 0.0


def postmaster_pid() -> int | None:
    """The PostgreSQL server's main process, parent of this process's backend (None if remote)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    return parent_pid(backend)


def other_database_backends() -> list[int]:
    """Live backends of the server connected to other databases (the team's tests, on a shared box)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname IS DISTINCT FROM current_database()")
        return [row[0] for row in cursor.fetchall()]


def redis_server_pid(url: str) -> int | None:
    """The Redis server's process (None if it is not on this machine)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    return pid if Path(f"/proc/{pid}").exists() else None


class CpuMeter:
    """CPU seconds used between ``start()`` and ``stop()`` by process trees, by group name.

    ``groups`` maps a name to a callable returning the group's root pids, called at
    ``start()``; each root's whole tree is counted with what it reaped (``tree_cpu_seconds``),
    so children that came and went during the run are in the figure.
    """

    def __init__(self, groups):
        self.groups = groups
        self.roots: dict[str, list[int]] = {}
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        return {name: sum(tree_cpu_seconds(root) for root in roots) for name, roots in self.roots.items()}

    def start(self) -> None:
        self.roots = {name: [pid for pid in roots() if pid] for name, roots in self.groups.items()}
        self.before = self._read()

    def stop(self) -> dict[str, float]:
        after = self._read()
        self.used = {name: after[name] - self.before[name] for name in self.roots}
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


# --- the deployed configuration: deploy/Procfile's commands, as a process manager runs them ---

PROCFILE = PROJECT_DIR / "deploy" / "Procfile"


def procfile_command(name: str) -> str:
    """The command line of one process type of deploy/Procfile (``web``, ``worker``, ``beat``)."""
    for line in PROCFILE.read_text().splitlines():
        kind, _, command = line.partition(":")
        if kind.strip() == name and not line.startswith("#"):
            return command.strip()
    raise KeyError(f"deploy/Procfile has no {name!r} process")


def procfile_start(name: str, environment: dict) -> ServerProcess:
    """Start one Procfile process through ``sh`` (which expands its ``${VAR:-default}``), as
    honcho or foreman would, with the virtualenv's scripts first on PATH. ``exec`` makes the
    server itself (gunicorn's master, Celery's main process) the child whose tree is metered.
    It runs in a session of its own, so stopping it also ends anything it left behind."""
    log_path, log = _log_file(f"procfile-{name}")
    scripts = str(Path(sys.executable).parent)
    environment = {**environment, "PATH": scripts + os.pathsep + environment.get("PATH", os.defpath)}
    process = subprocess.Popen(
        ["sh", "-c", "exec " + procfile_command(name)],
        cwd=PROJECT_DIR, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    return SessionProcess(f"{name} (deploy/Procfile)", process, log_path)


class SessionProcess(ServerProcess):
    def stop(self) -> None:
        super().stop()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: only what it started


def wait_http_ok(server: ServerProcess, port: int, path: str = "/healthz", timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            if http_get(port, path, timeout=2) == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} did not answer {path} within {timeout:.0f} s:\n{server.log_tail()}")


def wait_worker_ready(server: ServerProcess, broker_url: str, timeout: float = 90.0) -> None:
    """Until a worker on ``broker_url`` (the bench's own Redis database) answers a ping."""
    from celery import Celery

    probe = Celery(broker=broker_url, set_as_current=False)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")
            if probe.control.ping(timeout=1.0):
                return
    finally:
        probe.close()
    raise RuntimeError(f"{server.name} did not answer a ping within {timeout:.0f} s:\n{server.log_tail()}")
