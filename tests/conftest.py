"""Shared fixtures. The suite runs against whatever DATABASE_URL names: PostgreSQL in CI
(the production path), SQLite for the embedded default."""

import pytest
from django.db import connection


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    skip_postgres = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL=postgres://…)")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip_postgres)


@pytest.fixture
def on_postgres():
    return connection.vendor == "postgresql"
