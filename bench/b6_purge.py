"""B6 purge: a day of visit tokens past retention dropped by the retention service.

A date older than the retention window is generated inside PostgreSQL (20M tokens at full
scale, a Hong Kong day's third), then ``notifications.retention.retention_purge`` runs, exactly as the beat
task does. Every statement it runs is captured: the visit tokens must go by partition DETACH
and DROP, never by a DELETE on the table or a daily partition (only the DEFAULT partition's
stray rows may be deleted, in bounded chunks).

Local limit in the same run: creating and dropping an empty table (a catalogue change's cost).
Target on this machine: ≤ 1 s; no table-wide DELETE.
"""

import datetime as dt
import time

from bench import datagen
from bench.b2_matching import StatementTimer
from bench.common import Options, Report, Stopwatch, check, django_setup, fmt, parse_options

SIZES = {"small": 100_000, "medium": 2_000_000, "full": 20_000_000}


def partition_sizes() -> dict[str, tuple[int, int]]:
    """Every visit-token partition: (bytes with indexes, estimated rows)."""
    from django.db import connection

    from notifications.partitions import PARENT

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid), GREATEST(c.reltuples, 0)::bigint FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
            [PARENT],
        )
        return {name: (size, rows) for name, size, rows in cursor.fetchall()}


def tuples_deleted() -> dict[str, int]:
    """Rows ever deleted from each daily partition, from the statistics (cleared snapshot)."""
    from django.db import connection

    from notifications.partitions import PARENT

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT relname, n_tup_del FROM pg_stat_user_tables WHERE relname LIKE %s", [f"{PARENT}_p%"])
        return dict(cursor.fetchall())


def ddl_round_trip_ms() -> float:
    from django.db import connection, transaction

    with Stopwatch() as watch, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_ddl_probe (id int)")
        cursor.execute("DROP TABLE bench_ddl_probe")
    return watch.seconds * 1000


def forbidden_deletes(statements) -> list[str]:
    """DELETEs that touch visit tokens other than the DEFAULT partition's strays."""
    from notifications.partitions import DEFAULT_PARTITION, PARENT

    bad = []
    for sql, _params, _seconds in statements:
        text = sql.lstrip()
        if text.upper().startswith("DELETE") and PARENT in text and DEFAULT_PARTITION not in text:
            bad.append(text[:160])
    return bad


def run(options: Options) -> Report:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from notifications.partitions import PARENT, partition_name
    from notifications.retention import retention_purge

    size = SIZES[options.scale]
    report = Report("B6 purge: dropping a day of visit tokens past retention", options)
    today = timezone.localdate()
    old_date = today - dt.timedelta(days=settings.LEAVEHOME_RETENTION_DAYS + 5)
    loaded, load_seconds = datagen.background_ensure({old_date: size})
    name = partition_name(old_date)

    before = partition_sizes()
    check(name in before, "the old date has its own partition")
    time.sleep(1.1)  # statistics are flushed at most once a second: let earlier work settle
    deleted_before = tuples_deleted()
    timer = StatementTimer()
    with connection.execute_wrapper(timer), Stopwatch() as purging:
        removed = retention_purge(today=today)
    datagen.layout_forget(old_date)
    after = partition_sizes()
    time.sleep(1.1)
    deleted_after = tuples_deleted()

    # From the DETACH to the next statement after the DROP: the commit that unlinks the files counts.
    touching = [index for index, (sql, _p, _s) in enumerate(timer.statements) if name in sql]
    drop_seconds = timer.span(touching[-1], end=time.perf_counter()) + (
        timer.started_at[touching[-1]] - timer.started_at[touching[0]]
    )
    bad = forbidden_deletes(timer.statements)
    check(name not in after, "the old partition is gone")
    check(name in removed.get("visit_token_partitions_dropped", []), "the purge reports the partition it dropped")
    check(not bad, f"no DELETE on the visit-token table or a daily partition: {bad[:2]}")
    retained = set(before) - {name}
    check(retained <= set(after), "every other partition is still there")
    check(
        all(deleted_after.get(part, 0) == deleted_before.get(part, 0) for part in retained if part in deleted_before),
        "no row was deleted from a retained daily partition",
    )
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{PARENT}" WHERE date = %s', [old_date])
        check(cursor.fetchone()[0] == 0, "no token of the purged date remains")

    total_before = sum(bytes_ for bytes_, _rows in before.values())
    total_after = sum(bytes_ for bytes_, _rows in after.values())
    report.table(
        "Retention purge of one past day",
        ["what", "value", "local limit", "target"],
        [
            ["tokens in the dropped day", fmt(before[name][1]), "", ""],
            ["partition DETACH + DROP", f"{drop_seconds * 1000:.1f} ms",
             f"{ddl_round_trip_ms():.1f} ms create+drop of an empty table", "≤ 1 s"],
            ["whole retention_purge (all tables)", f"{purging.seconds * 1000:.1f} ms", "", ""],
            ["statements run, DELETEs on visit tokens outside DEFAULT", f"{len(timer.statements)}, {len(bad)}", "",
             "0"],
            ["visit-token table size before → after",
             f"{total_before / 2**20:,.1f} MiB → {total_after / 2**20:,.1f} MiB", "", ""],
            ["the dropped partition's size", f"{before[name][0] / 2**20:,.1f} MiB", "", ""],
        ],
    )  # fmt: skip
    if loaded:
        report.note(
            f"The day was generated inside PostgreSQL: {fmt(loaded)} tokens in {load_seconds:.1f} s "
            "(with VACUUM ANALYZE)."
        )
    report.note(
        "Correctness: the partition is gone, the purge reported it, no token of that date remains, every other "
        "partition is there with no row deleted (n_tup_del), and no DELETE touched the table or a daily partition."
    )
    return report


def main(argv=None) -> None:
    options = parse_options("bench.b6_purge", __doc__.splitlines()[0], argv=argv)
    django_setup(options)
    run(options).emit()


if __name__ == "__main__":
    main()
