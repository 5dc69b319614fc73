"""B3 late uploads: from an upload's commit to its notification being visible, while ingest runs.

A case is published first (its windows yesterday at probe venues), so its exposures are live.
Then B1's upload load runs at a steady rate through gunicorn, and every so often a probe
phone (reference client) that was at a probe venue during a window uploads its visits. Its
202 answer comes after the upload committed; from then, this process polls the notification
table every 20 ms until the probe's row is visible. The matching task runs in a real Celery
worker on Redis, queued behind the load's own matching tasks, as in production.

Local limit in the same run: the same probe with no load (an idle queue and server).
Target on this machine: p99 ≤ 30 s. Correctness: each probe gets exactly the oracle's
notification (high risk, that case visit), and nothing else.
"""

import threading
import time
import uuid

import httpx

from bench import load, phones
from bench.b1_ingest import RssSampler, ingest_dates, rss_rows, venue_pool, work_items
from bench.common import Options, Report, check, django_setup, fmt, parse_options, percentile

SIZES = {
    "small": {"probes": 8, "idle_probes": 3, "rate": 15.0, "phones": 100, "concurrency": 6, "web_workers": 3,
              "probe_every": 1.0},
    "medium": {"probes": 60, "idle_probes": 5, "rate": 40.0, "phones": 2_000, "concurrency": 8, "web_workers": 4,
               "probe_every": 1.0},
    "full": {"probes": 150, "idle_probes": 10, "rate": 60.0, "phones": 5_000, "concurrency": 8, "web_workers": 4,
             "probe_every": 0.8},
}  # fmt: skip
PROBE_VENUES = 10
POLL_SECONDS = 0.02


def published_probe_case(codes: list, official) -> tuple[list[phones.Window], object]:
    """A published case: one window yesterday 10:00-11:00 at each probe venue."""
    from bench.b2_matching import backdate_codes, case_import
    from notifications.tasks import case_publish_and_match

    yesterday = ingest_dates()[0]
    venue_ids = [uuid.UUID(code.sub) for code in codes]
    backdate_codes(venue_ids, days=30)
    windows = phones.plan_case_visits(venue_ids, [yesterday], 2 * len(venue_ids))[::2]
    case = case_import(windows, reference=f"BENCH-B3-{uuid.uuid4().hex[:6]}", actor=official)
    case_publish_and_match(case=case, actor=official)
    return windows, case


class Prober:
    """Probe phones: each visited a probe venue during its window; time to its notification."""

    def __init__(self, base_url: str, codes: list, windows: list, config: dict):
        self.http = httpx.Client(base_url=base_url, timeout=60.0)
        self.codes = {uuid.UUID(code.sub): code for code in codes}
        self.windows = windows
        self.config = config
        self.latencies: list[float] = []
        self.visits: list[phones.PlantedVisit] = []
        self.phone_ids: list[str] = []
        self.missed = 0

    def probe(self, index: int, timeout: float = 120.0) -> None:
        from notifications.models import Notification

        (phone,) = load.phones_register(1, self.config)
        window = self.windows[index % len(self.windows)]
        t_in = window.start + 600
        phone.http = self.http
        phone.check_in(self.codes[window.venue_id], t_in, t_in + 1200)
        phone.upload()
        committed = time.perf_counter()  # the 202 is sent after the upload's transaction committed
        self.visits.append(phones.PlantedVisit(uuid.UUID(phone.device_id), window.venue_id, t_in, t_in + 1200))
        self.phone_ids.append(phone.device_id)
        notifications = Notification.objects.filter(device_id=phone.device_id)
        while not notifications.exists():
            if time.perf_counter() - committed > timeout:
                self.missed += 1
                return
            time.sleep(POLL_SECONDS)
        self.latencies.append(time.perf_counter() - committed)


def run(options: Options) -> Report:
    from django.contrib.auth import get_user_model

    from notifications.models import Notification

    sizes = SIZES[options.scale]
    rate = getattr(options.extra, "rate", None) or sizes["rate"]
    if "b1_requests_per_second" in options.context and not getattr(options.extra, "rate", None):
        rate = max(5.0, round(0.5 * options.context["b1_requests_per_second"], 1))
    report = Report("B3 late uploads: upload commit to notification visible, under steady ingest", options)
    official, _ = get_user_model().objects.get_or_create(username="bench-official", defaults={"is_staff": True})
    run_label = f"b3-{int(time.time())}"
    probe_codes = venue_pool(PROBE_VENUES, f"{run_label}-probe")
    load_codes = venue_pool(100, f"{run_label}-load")
    windows, case = published_probe_case(probe_codes, official)

    with load.server_stack(options.database_url, web_workers=sizes["web_workers"]) as stack:
        config = load.phone_config(stack.base_url)
        idle = Prober(stack.base_url, probe_codes, windows, config)
        for index in range(sizes["idle_probes"]):
            idle.probe(index)
        loaded = Prober(stack.base_url, probe_codes, windows, config)
        load_phones = load.phones_register(sizes["phones"], config)
        duration = sizes["probes"] * sizes["probe_every"] + 30
        work = work_items(load_phones, load_codes, int(rate * duration * 1.5) + 10, seed=3)
        stop = threading.Event()
        result_box = {}
        backlog_seen = []

        def background():
            result_box["load"] = load.uploads_run(
                stack.base_url, work, concurrency=sizes["concurrency"], rate=rate, stop=stop
            )

        with RssSampler(stack):
            loader = threading.Thread(target=background, daemon=True)
            loader.start()
            time.sleep(5)  # reach the steady state before probing
            for index in range(sizes["probes"]):
                started = time.perf_counter()
                loaded.probe(index)
                backlog_seen.append(stack.backlog())
                time.sleep(max(0.0, sizes["probe_every"] - (time.perf_counter() - started)))
            stop.set()
            loader.join()
        memory = rss_rows(stack)
    background_load = result_box["load"]

    expected = phones.oracle(loaded.visits + idle.visits, windows)
    key_of = {cv.id: next(w.case_visit_key for w in windows if w.venue_id == cv.venue_id) for cv in case.visits.all()}
    probe_ids = loaded.phone_ids + idle.phone_ids
    actual = {
        (uuid.UUID(str(device_id)), key_of[cv_id]): risk
        for device_id, cv_id, risk in Notification.objects.filter(device_id__in=probe_ids).values_list(
            "device_id", "case_visit_id", "risk"
        )
    }
    check(loaded.missed == 0 and idle.missed == 0, f"every probe notified within 120 s ({loaded.missed} missed)")
    check(actual == expected, "each probe has exactly the oracle's notification")
    check(not background_load.errors, f"the background load's uploads all accepted: {background_load.errors[:2]}")

    achieved = background_load.requests / max(1e-9, background_load.seconds)
    report.table(
        "Late uploads: commit → notification visible (poll every 20 ms)",
        ["what", "p50 s", "p99 s", "max s", "probes", "target"],
        [
            ["under load", f"{percentile(loaded.latencies, 0.5):.2f}", f"{percentile(loaded.latencies, 0.99):.2f}",
             f"{max(loaded.latencies):.2f}", str(len(loaded.latencies)), "p99 ≤ 30 s"],
            ["local limit: idle (no load)", f"{percentile(idle.latencies, 0.5):.2f}",
             f"{percentile(idle.latencies, 0.99):.2f}", f"{max(idle.latencies):.2f}", str(len(idle.latencies)), ""],
        ],
    )  # fmt: skip
    report.table(
        "Background ingest during the probes",
        ["what", "value"],
        [
            ["uploads/s asked, achieved", f"{rate:.1f}, {achieved:.1f}"],
            ["tokens/s", fmt(background_load.tokens / max(1e-9, background_load.seconds))],
            ["upload p50 / p99 ms", f"{background_load.p(0.5):.0f} / {background_load.p(0.99):.0f}"],
            ["largest schedule lag of the load (s)", f"{background_load.lag_seconds:.2f}"],
            ["matching tasks queued (median, max at probe times)",
             f"{fmt(int(percentile(backlog_seen, 0.5)))}, {fmt(max(backlog_seen))}"],
        ],
    )  # fmt: skip
    report.table("Peak RSS (MiB)", ["process", "largest worker", "master", "target"], memory)
    report.note(
        f"Correctness: all {len(probe_ids)} probes notified at high risk for their case visit, exactly as the oracle "
        "says, and nothing else; every background upload accepted."
    )
    return report


def _add_arguments(parser):
    parser.add_argument("--rate", type=float, default=None, help="background uploads per second (default: by scale)")


def main(argv=None) -> None:
    options = parse_options("bench.b3_late", __doc__.splitlines()[0], _add_arguments, argv=argv)
    django_setup(options)
    run(options).emit()


if __name__ == "__main__":
    main()
