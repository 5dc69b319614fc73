"""B3 late uploads at B1's saturated rate: from an upload's 202 to its notification being visible.

Measured inside B1's saturated run (bench/b1_ingest.py): a case is published first (a window
yesterday at each of ten probe venues), so its exposures are live; while wrk replays the
ingest load as fast as the deployed stack answers, a probe phone (reference client) that
visited a probe venue during its window uploads every second. Its 202 comes after the upload
committed; from then this process polls the notification table every 50 ms until the probe's
notification is visible. The backlog (matching tasks queued or taken, dates in the upload
backlog table) is sampled meanwhile and its maximum reported.

Target on this machine: p99 ≤ 30 s, the backlog bounded. Correctness: each probe gets exactly
the oracle's notification (high risk, that case visit), and nothing else.

``bench.run`` reports B3 from the B1 run it has just made; run alone, this runs B1 first.
"""

from bench import b1_ingest
from bench.common import Options, Report, django_setup, parse_options


def run(options: Options) -> Report:
    if "b3_report" not in options.context:
        b1_ingest.run(options).emit()
    return options.context.pop("b3_report")


def main(argv=None) -> None:
    options = parse_options("bench.b3_late", __doc__.splitlines()[0], argv=argv)
    django_setup(options)
    run(options).emit()


if __name__ == "__main__":
    main()
