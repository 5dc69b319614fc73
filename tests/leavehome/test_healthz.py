from unittest import mock

import pytest


@pytest.mark.django_db
def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"


@pytest.mark.django_db
def test_healthz_is_503_with_reason_when_database_fails(client):
    with mock.patch("leavehome.views.connection.cursor", side_effect=OSError("connection refused")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert "connection refused" in response.json()["problems"]["database"]
