"""B4 push fan-out: N notifications delivered through the real Web Push path to a local receiver.

Each device has a Web Push channel registered through ``push_channel_set`` (sealed address,
SSRF guard; the receiver on 127.0.0.1 is allowed over plain http by
PUSH_WEBPUSH_INSECURE_HOSTS). The notifications are handed to ``push_later`` exactly as
matching does; the push_deliver tasks run in real Celery worker processes on Redis, which
encrypt every payload (RFC 8291, aes128gcm, a fresh ECDH key per push) and sign VAPID
(RFC 8292) before POSTing to the receiver (bench/receiver.py, its own process). The clock
runs from the commit that enqueues the tasks to the last delivery recorded in the database.

Local limits in the same run: the payload encryption alone in one process, and bare POSTs to
the same receiver from one process with as many connections as a worker uses.

Target on this machine: ≥ 1,000 pushes/s with two worker processes. Correctness: every
endpoint pushed exactly once per run; sample payloads decrypt (with the subscriber's keys)
to the notification ids of that device; the body carries nothing in clear.
"""

import base64
import json
import subprocess
import sys
import threading
import time
import uuid

import httpx

from bench import datagen, load
from bench.common import PROJECT_DIR, Options, Report, Stopwatch, check, django_setup, fmt, parse_options, rate
from bench.processes import CpuMeter, celery_worker_start, free_port

SIZES = {"small": 400, "medium": 20_000, "full": 100_000}
KEYPAIRS = 40


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def subscriber_keys(count: int) -> list[tuple]:
    """(private key, p256dh, auth) of ``count`` simulated browsers."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    keys = []
    for _ in range(count):
        private = ec.generate_private_key(ec.SECP256R1())
        public = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        keys.append((private, b64u(public), b64u(os.urandom(16))))
    return keys


def receiver_start() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.receiver", "--port", str(port)], cwd=PROJECT_DIR)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/stats", timeout=1).raise_for_status()
            return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the push receiver did not start")


# Channels beyond this many are written in bulk with the push app's own sealing functions
# (the rows push_channel_set writes, without its per-row transaction): registration is setup,
# not what B4 measures, and one by one it would take longer than the fan-out at 100,000.
SERVICE_CHANNELS = 200


def channels_register(count: int, keys: list, receiver: str) -> tuple[list, float, int]:
    """Devices (by COPY) with a Web Push channel each; returns (device ids, seconds of the service part, how many)."""
    from notifications.models import Device, PushChannel
    from notifications.push.channels import push_address_validate, push_channel_set
    from notifications.push.sealing import address_hash, address_seal

    ids = [uuid.UUID(bytes=raw) for raw in datagen.device_pool(count, seed=f"bench-push-{uuid.uuid4().hex}")]
    datagen.devices_copy([device.bytes for device in ids])

    def body(index: int, device_id) -> dict:
        _private, p256dh, auth = keys[index % len(keys)]
        endpoint = f"{receiver}/push/{index % len(keys)}/{device_id}"
        return {"kind": "webpush", "subscription": {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}}

    through_service = min(count, SERVICE_CHANNELS)
    position = {device_id: index for index, device_id in enumerate(ids)}
    with Stopwatch() as watch:
        for device in Device.objects.filter(id__in=ids[:through_service]):
            push_channel_set(device=device, data=body(position[device.pk], device.pk))
    rows = []
    for index in range(through_service, count):
        kind, address = push_address_validate(body(index, ids[index]))  # the same validation and SSRF guard
        rows.append(PushChannel(
            device_id=ids[index], kind=kind, address_hash=address_hash(kind=kind, address_id=address["endpoint"]),
            address_sealed=address_seal(device_id=ids[index], kind=kind, address=address),
        ))  # fmt: skip
    PushChannel.objects.bulk_create(rows, batch_size=5000)
    return ids, watch.seconds, through_service


def case_visits(count: int):
    """Case visits to hang the notifications on (data, not a publication: delivery is measured)."""
    import datetime as dt

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from bench.b5_codes import _signing_key_ready, chain_csv_rows, venues_bulk_register
    from notifications.models import Case, CaseVisit

    _signing_key_ready()
    official, _ = get_user_model().objects.get_or_create(username="bench-official", defaults={"is_staff": True})
    (venue,) = venues_bulk_register(chain_csv_rows(1, f"b4-{uuid.uuid4().hex[:6]}"), owner=official)
    case = Case.objects.create(
        reference=f"BENCH-B4-{uuid.uuid4().hex[:6]}", confirmed_on=timezone.localdate(), status="published"
    )
    start = timezone.now().replace(microsecond=0) - dt.timedelta(days=1)
    return [
        CaseVisit.objects.create(case=case, venue=venue, start=start + dt.timedelta(hours=i),
                                 end=start + dt.timedelta(hours=i + 1))
        for i in range(count)
    ]  # fmt: skip


def delivered_count(notification_ids_first: int, notification_ids_last: int) -> int:
    from notifications.models import PushDelivery

    return PushDelivery.objects.filter(
        status="delivered", notification_id__gte=notification_ids_first, notification_id__lte=notification_ids_last
    ).count()


def fan_out(options: Options, devices: list, case_visit, receiver: str, processes: int) -> dict:
    from django.db import transaction

    from notifications.models import Notification
    from notifications.push.tasks import push_later

    notifications = Notification.objects.bulk_create(
        [Notification(device_id=device, case_visit=case_visit, risk="high") for device in devices], batch_size=5000
    )
    ids = sorted(n.id for n in notifications)
    httpx.get(f"{receiver}/reset").raise_for_status()
    queue = f"bench-push-{uuid.uuid4().hex[:8]}"
    environment = load.worker_environment(options.database_url, queue)
    workers = [celery_worker_start(environment, queue=queue, name=f"push{i}") for i in range(processes)]
    meter = CpuMeter({"workers": lambda: [worker.pid for worker in workers]})
    try:
        meter.start()
        with load.tasks_to_broker(queue), transaction.atomic():
            push_later(notification_ids=ids)
        started = time.perf_counter()  # the tasks are sent on the commit above
        deadline = started + max(120.0, len(ids) / 50)
        done = 0
        while time.perf_counter() < deadline:
            done = delivered_count(ids[0], ids[-1])
            if done >= len(ids):
                break
            for worker in workers:
                worker.sample_rss()
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        worker_cpu = meter.stop()["workers"]
        rss = max(worker.peak_rss()[0] for worker in workers)
    finally:
        for worker in workers:
            worker.stop()
    stats = httpx.get(f"{receiver}/stats").json()
    samples = httpx.get(f"{receiver}/samples").json()["samples"]
    return {"ids": ids, "delivered": done, "seconds": seconds, "stats": stats, "samples": samples, "rss": rss,
            "cpu": worker_cpu}  # fmt: skip


def verify_samples(samples: list, keys: list, notification_of: dict) -> int:
    import http_ece
    from cryptography.hazmat.primitives import serialization
    from django.conf import settings
    from py_vapid import Vapid02

    vapid_public = b64u(
        Vapid02.from_string(settings.PUSH_VAPID_PRIVATE_KEY).public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )
    for sample in samples:
        _, _, key_index, device = sample["path"].split("/")
        private, _p256dh, auth = keys[int(key_index)]
        body = base64.b64decode(sample["body"])
        check(b"lhs1" not in body and b"ids" not in body, "the push body carries nothing in clear")
        check(sample["headers"].get("content-encoding") == "aes128gcm", "aes128gcm encoding")
        authorization = sample["headers"].get("authorization", "")
        check(authorization.startswith("vapid t=") and f"k={vapid_public}" in authorization, "VAPID header")
        plaintext = http_ece.decrypt(body, private_key=private, auth_secret=base64.urlsafe_b64decode(auth + "=="),
                                     version="aes128gcm")  # fmt: skip
        message = json.loads(plaintext)
        check(message.get("ids") == [notification_of[uuid.UUID(device)]], "the payload names the device's notification")
    return len(samples)


def limit_encryption(keys: list, seconds: float = 1.0) -> float:
    from pywebpush import WebPusher

    _private, p256dh, auth = keys[0]
    pusher = WebPusher({"endpoint": "http://127.0.0.1/x", "keys": {"p256dh": p256dh, "auth": auth}})
    payload = json.dumps({"type": "lhs1.notifications", "poll": "/api/v1/notifications", "ids": [123456]}).encode()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        pusher.encode(payload, content_encoding="aes128gcm")
        count += 1
    return rate(count, time.perf_counter() - started)


def limit_receiver(receiver: str, seconds: float = 2.0, connections: int = 16) -> float:
    count = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker():
        with httpx.Client() as http:
            while time.perf_counter() < deadline:
                http.post(f"{receiver}/limit", content=b"x" * 200)
                with lock:
                    count[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return rate(count[0], time.perf_counter() - started)


def run(options: Options) -> Report:
    size = SIZES[options.scale]
    report = Report("B4 push fan-out: Web Push (RFC 8291 + VAPID) to a local receiver", options)
    keys = subscriber_keys(KEYPAIRS)
    receiver_process, receiver = receiver_start()
    try:
        devices, channel_seconds, through_service = channels_register(size, keys, receiver)
        visits = case_visits(2)
        rows = []
        checked = 0
        for processes, case_visit in zip((1, 2), visits, strict=True):
            result = fan_out(options, devices, case_visit, receiver, processes)
            stats = result["stats"]
            check(result["delivered"] == size, f"all {size} deliveries recorded ({result['delivered']})")
            check(stats["pushes"] == size and stats["endpoints"] == size and stats["duplicates"] == 0,
                  f"each endpoint pushed exactly once: {stats}")  # fmt: skip
            notification_of = _by_device(result["ids"])
            checked += verify_samples(result["samples"], keys, notification_of)
            label = f"{processes} worker process{'es' if processes > 1 else ''}"
            seconds = result["seconds"]
            cpu_ms = result["cpu"] * 1000 / size
            rows.append([label, fmt(size), f"{seconds:.2f}", fmt(rate(size, seconds)), f"{cpu_ms:.2f}",
                         f"{result['rss']:.0f}"])  # fmt: skip
        encryption = limit_encryption(keys)
        bare = limit_receiver(receiver)
    finally:
        receiver_process.terminate()
        receiver_process.wait(timeout=10)
    report.table(
        "Fan-out (commit of push_later → last delivery recorded)",
        [
            "workers (prefork, concurrency 1)",
            "notifications",
            "seconds",
            "deliveries/s",
            "worker CPU ms per push",
            "peak RSS MiB",
        ],
        rows,
    )
    report.table(
        "Local limits in the same run (one process)",
        ["what", "per second", "target"],
        [
            ["payload encryption alone (pywebpush aes128gcm)", fmt(encryption), ""],
            ["bare POSTs to the receiver (16 connections)", fmt(bare), ""],
            ["channels registered through push_channel_set (setup)", fmt(rate(through_service, channel_seconds)), ""],
            ["target with two workers", "", "≥ 1,000/s"],
        ],
    )
    report.note(
        f"Correctness: each run pushed every endpoint exactly once, every delivery was recorded; {checked} sampled "
        "pushes decrypted with the subscriber's keys to that device's notification id, carried a VAPID header with "
        "the server's key, and nothing in clear."
    )
    return report


def _by_device(ids: list[int]) -> dict:
    from notifications.models import Notification

    return dict(Notification.objects.filter(id__in=ids).values_list("device_id", "id"))


def main(argv=None) -> None:
    options = parse_options("bench.b4_push", __doc__.splitlines()[0], argv=argv)
    django_setup(options)
    run(options).emit()


if __name__ == "__main__":
    main()
