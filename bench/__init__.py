"""Benchmarks at Hong Kong scale.

One command per benchmark (``python -m bench.b1_ingest --scale small``) and one that runs
them all (``python -m bench.run --scale small|medium|full``). Every benchmark measures the
project's real code (gunicorn, Celery workers on Redis, PostgreSQL) and, in the same run, a
local limit of this machine, so figures from a noisy shared 2-core box can be read relative
to what the box itself can do. ``--scale small`` is the CI smoke run: it asserts correctness
only (matches equal an oracle, counts right, nothing leaked), never speed.

See docs/benchmarks.md for the results and their analysis.
"""
