"""The restore drill of docs/operations.md: dump, drop, restore, and the restored system
matches the original and serves, partitioned visit-token table included."""

import subprocess

import httpx
import psycopg
import pytest
from django.db import connection

from notifications.models import Notification, VisitToken
from notifications.tasks import case_publish_and_match
from tests import phone
from tests.deploy.scenario import keys_of_this_process, outbreak_draft, phone_visits_and_uploads
from tests.deploy.test_topology import _free_port, _wait_for, production_env
from tests.phone.server import phone_http, row_counts, uploads_swept

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HTTPS = {"X-Forwarded-Proto": "https"}
# The catalogue's view of the partitioned table: each partition and its bounds.
PARTITIONS = """
    SELECT child.relname, pg_get_expr(child.relpartbound, child.oid)
    FROM pg_inherits JOIN pg_class child ON child.oid = pg_inherits.inhrelid
    JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
    WHERE parent.relname = 'notifications_visittoken' ORDER BY 1
"""


def _server_args():
    settings = connection.settings_dict
    return ["-h", settings["HOST"] or "127.0.0.1", "-p", str(settings["PORT"] or 5432), "-U", settings["USER"]]


def _restored_url(name):
    settings = connection.settings_dict
    return f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{name}"


def _run(*command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dump_drop_restore_matches_and_serves(processes, tmp_path):
    outbreak = outbreak_draft("DRILL-1")
    device = phone.Phone(phone_http())
    phone_visits_and_uploads(device, outbreak)
    uploads_swept()
    case_publish_and_match(case=outbreak.case, actor=None)
    assert Notification.objects.filter(device_id=device.device_id).exists()
    assert VisitToken.objects.count() > 0
    before = row_counts()
    with connection.cursor() as cursor:
        cursor.execute(PARTITIONS)
        partitions = cursor.fetchall()
    assert partitions, "the visit-token table is partitioned on PostgreSQL"

    database = connection.settings_dict["NAME"]
    drill = f"{database}_drill"
    dump = tmp_path / "leavehome.dump"
    # The drill as docs/operations.md writes it: a custom-format dump, a fresh database, restore.
    _run("pg_dump", *_server_args(), "--format=custom", f"--file={dump}", database)
    _run("dropdb", *_server_args(), "--if-exists", drill)
    _run("createdb", *_server_args(), drill)
    _run("pg_restore", *_server_args(), "--no-owner", "--exit-on-error", f"--dbname={drill}", str(dump))
    try:
        with psycopg.connect(_restored_url(drill)) as restored:
            counts = {}
            for table in before:
                # Table names from this database's catalogue, quoted.
                query = psycopg.sql.SQL("SELECT COUNT(*) FROM {}").format(psycopg.sql.Identifier(table))
                counts[table] = restored.execute(query).fetchone()[0]
            assert restored.execute(PARTITIONS).fetchall() == partitions
        assert counts == before

        # The restored database serves the phone: its secret still authenticates it, and its
        # notification is there.
        env = production_env(
            "redis://127.0.0.1:6379/14",
            "unused",
            DATABASE_URL=_restored_url(drill),
            GUNICORN_WORKERS="1",
            HEALTHZ_BEAT_MAX_AGE_SECONDS="0",
            **keys_of_this_process(),
        )
        port = _free_port()
        processes.start_gunicorn(port, env)
        base = f"http://127.0.0.1:{port}"
        _wait_for(lambda: httpx.get(f"{base}/healthz", timeout=5).status_code == 200, "the restored system healthy")
        restored_phone = phone.Phone(httpx.Client(base_url=base, headers=HTTPS, timeout=30))
        restored_phone.config, restored_phone.secret = device.config, device.secret
        [item] = restored_phone.poll()
        assert item["risk"] == "high"
    finally:
        processes.stop_all()
        _run("dropdb", *_server_args(), "--if-exists", drill)
