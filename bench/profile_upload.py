"""Where an upload's time goes: ``python -m bench.profile_upload`` (a companion of B1).

Runs uploads by the reference phone client through the whole Django stack in this process
(httpx's WSGI transport: the same middleware, authentication, throttles counted in Redis as
in production, parser and ingest service, without gunicorn's socket) under cProfile, and
prints the functions that take the time.

The cache is the bench's Redis database, set before Django reads its settings: an earlier
version set it afterwards, so its throttles counted in an in-process cache and the profile
missed their Redis round trips.
"""

import cProfile
import io
import pstats
import random
import uuid

import httpx

from bench import load
from bench.b1_ingest import ingest_dates, venue_pool
from bench.common import Options, Report, Stopwatch, django_setup, parse_options

UPLOADS = {"small": 100, "medium": 400, "full": 1000}


def run(options: Options) -> Report:
    import redis
    from django.core.handlers.wsgi import WSGIHandler

    report = Report("B1 profile: one upload through the Django stack, in-process", options)
    codes = venue_pool(50, f"profile-{uuid.uuid4().hex[:6]}")
    queue = f"bench-profile-{uuid.uuid4().hex[:8]}"
    from django.conf import settings

    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        raise SystemExit("the profile needs the Redis cache: run it as python -m bench.profile_upload")
    http = httpx.Client(transport=httpx.WSGITransport(app=WSGIHandler()), base_url="http://127.0.0.1")
    config = http.get("/api/v1/config").json()
    count = UPLOADS[options.scale]
    phones = load.phones_register(count, config)
    rng = random.Random(5)
    profiler = cProfile.Profile()
    with load.tasks_to_broker(queue):
        for phone in phones[:5]:  # warm caches (partitions known, keys loaded)
            phone.http = http
            phone.visits = []
            for code, t_in, t_out in load.random_visits(codes, rng, visits=5, days=ingest_dates()):
                phone.check_in(code, t_in, t_out)
            phone.upload()
        with Stopwatch() as watch:
            profiler.enable()
            for phone in phones[5:]:
                phone.http = http
                phone.visits = []
                for code, t_in, t_out in load.random_visits(codes, rng, visits=5, days=ingest_dates()):
                    phone.check_in(code, t_in, t_out)
                phone.upload()
            profiler.disable()
    redis.Redis.from_url(load.DEFAULT_BROKER_URL).delete(queue)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(35)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next(index for index, line in enumerate(lines) if "ncalls" in line)
    report.table(
        "In-process uploads (no gunicorn, one at a time)",
        ["uploads", "seconds", "ms per upload (profiled)"],
        [[str(count - 5), f"{watch.seconds:.2f}", f"{watch.seconds * 1000 / (count - 5):.1f}"]],
    )
    report.block("cProfile, cumulative (top 35)", "\n".join(line[:200] for line in lines[start:]))
    return report


def main(argv=None) -> None:
    options = parse_options("bench.profile_upload", __doc__.splitlines()[0], argv=argv)
    django_setup(options, CACHE_URL=load.CACHE_URL)
    run(options).emit()


if __name__ == "__main__":
    main()
