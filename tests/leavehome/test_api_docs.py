import pytest


@pytest.mark.django_db
def test_openapi_schema_describes_the_phone_api(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/visits" in schema["paths"]
    assert "/api/v1/devices" in schema["paths"]


@pytest.mark.django_db
def test_api_documentation_page_uses_only_local_static_files(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    # No CDN: every script and stylesheet comes from our own static files.
    assert "cdn." not in page and "unpkg" not in page and "jsdelivr" not in page
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
