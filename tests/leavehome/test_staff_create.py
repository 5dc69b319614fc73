"""manage.py staff_create: an official or a venue administrator, in one step, audited."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from leavehome.models import AuditEntry

pytestmark = pytest.mark.django_db

PASSWORD = "kowloon-bay-clinic-2026"


def _create(username="ada", group="Health officials", password=PASSWORD, monkeypatch=None):
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    out = io.StringIO()
    call_command(
        "staff_create",
        username,
        "--email",
        f"{username}@health.example",
        "--group",
        group,
        "--password-stdin",
        stdout=out,
    )
    return out.getvalue()


def test_creates_a_staff_user_in_the_group_who_may_publish(monkeypatch):
    output = _create(monkeypatch=monkeypatch)
    user = get_user_model().objects.get(username="ada")
    assert user.is_staff and not user.is_superuser and user.check_password(PASSWORD)
    assert list(user.groups.values_list("name", flat=True)) == ["Health officials"]
    assert user.has_perm("notifications.publish_case")
    assert "totp_enrol ada" in output
    assert AuditEntry.objects.filter(action="staff.create", object_id=str(user.pk)).exists()


def test_a_venue_administrator(monkeypatch):
    _create("ben", group="Venue administrators", monkeypatch=monkeypatch)
    assert get_user_model().objects.get(username="ben").groups.get().name == "Venue administrators"


@pytest.mark.parametrize(
    ("group", "password", "message"),
    [("Officials", PASSWORD, "No group 'Officials'"), ("Health officials", "short", "too short")],
)
def test_refuses_an_unknown_group_or_a_weak_password_and_writes_nothing(monkeypatch, group, password, message):
    with pytest.raises(CommandError, match=message):
        _create(group=group, password=password, monkeypatch=monkeypatch)
    assert not get_user_model().objects.filter(username="ada").exists()
    assert not AuditEntry.objects.exists()
