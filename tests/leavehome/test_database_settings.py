"""How the project's PostgreSQL connections are set up."""

import pytest
from django.db import connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_connections_run_without_jit_compilation():
    # Compiling a matching statement over a large partition costs hundreds of milliseconds,
    # far more than running it (docs/benchmarks.md, B2).
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == ("off",)
