"""Run every benchmark at one scale: ``python -m bench.run --scale small|medium|full``.

``--scale small`` is the CI smoke run: a couple of minutes, correctness asserted (matches equal
the oracle, counts right, nothing leaked), speed never. The order builds on itself: venues
first (B5), then the stored tokens and matching (B2), ingest on top of them (B1), late
uploads during ingest (B3), push fan-out (B4), and the purge last (B6), since it drops a day.
"""

import importlib
import sys
import time

from bench.common import BenchFailure, django_setup, parse_options

BENCHMARKS = [
    "bench.b5_codes",
    "bench.b2_matching",
    "bench.b1_ingest",
    "bench.b3_late",
    "bench.b4_push",
    "bench.soak",
    "bench.b6_purge",
]


def _add_arguments(parser):
    parser.add_argument("--only", nargs="*", default=None, help="run only these (e.g. b2_matching b6_purge)")


def main(argv=None) -> int:
    options = parse_options("bench.run", __doc__.splitlines()[0], _add_arguments, argv=argv)
    django_setup(options)
    selected = [name for name in BENCHMARKS if not options.extra.only or name.split(".")[-1] in options.extra.only]
    results = []
    for name in selected:
        module = importlib.import_module(name)
        started = time.monotonic()
        try:
            module.run(options).emit()
        except BenchFailure as failure:
            results.append((name, "FAILED", time.monotonic() - started))
            print(f"{name}: FAILED: {failure}", file=sys.stderr, flush=True)
            break
        # A failure found once the figures were measured: they are reported, the next benchmarks
        # run, and the run still fails.
        deferred = options.context.pop("deferred_failure", None)
        if deferred:
            print(f"{name}: FAILED: {deferred}", file=sys.stderr, flush=True)
        results.append((name, "FAILED" if deferred else "ok", time.monotonic() - started))
    print("\nSummary:")
    for name, outcome, seconds in results:
        print(f"  {name:<22} {outcome:<7} {seconds:7.1f} s")
    return 0 if results and all(outcome == "ok" for _, outcome, _ in results) and len(results) == len(selected) else 1


if __name__ == "__main__":
    sys.exit(main())
