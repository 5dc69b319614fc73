"""The admin and the API docs work in a real browser under the Content-Security-Policy."""

import pytest
from django.contrib.auth import get_user_model

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "harbour-view-official-31"


@pytest.fixture
def csp_violations(page):
    """Everything the browser refused because of the CSP, as chromium reports it."""
    refused = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    return refused


def test_the_admin_runs_its_scripts_under_the_csp(page, live_server, csp_violations):
    get_user_model().objects.create_superuser("official", "official@example.com", PASSWORD)
    response = page.goto(f"{live_server.url}/admin/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.fill("input[name=username]", "official")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")

    page.goto(f"{live_server.url}/admin/notifications/case/add/")
    # The inline formset's "Add another" link and the date shortcuts are built by admin JS.
    rows = page.locator("tr.form-row.dynamic-visits")
    before = rows.count()
    page.click(".add-row a")
    assert rows.count() == before + 1
    page.wait_for_selector(".datetimeshortcuts")
    # The console's own pages: the dashboard draws its charts, the kill switch asks first.
    page.goto(f"{live_server.url}/admin/notifications/case/dashboard/")
    page.wait_for_selector("canvas")
    questions = []
    page.on("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.goto(f"{live_server.url}/admin/notifications/case/kill-switch/")
    page.fill("input[name=reason]", "drill")
    page.click("#kill-switch-on")
    assert questions == ["Pause all publication matching and pushes?"]
    assert csp_violations == []


def test_the_swagger_ui_renders_the_api_under_the_csp(page, live_server, csp_violations):
    response = page.goto(f"{live_server.url}/api/docs/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # Swagger UI fetched the schema and drew one block per operation.
    page.wait_for_selector(".opblock-summary-path:has-text('/api/v1/visits')")
    assert csp_violations == []
