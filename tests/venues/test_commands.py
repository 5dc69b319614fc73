"""Signing key management commands."""

import pytest
from django.core.management import CommandError, call_command

from leavehome.models import AuditEntry
from venues.models import SigningKey

pytestmark = pytest.mark.django_db


def test_create_rotate_retire_withdraw():
    call_command("signing_key_create", kid="k1")
    with pytest.raises(CommandError, match="active already"):
        call_command("signing_key_create")
    call_command("signing_key_create", if_missing=True)
    call_command("signing_key_rotate", kid="k2")
    assert dict(SigningKey.objects.values_list("kid", "status")) == {"k1": "retired", "k2": "active"}
    call_command("signing_key_retire", "k1", withdraw=True)
    call_command("signing_key_retire", "k2")
    assert dict(SigningKey.objects.values_list("kid", "status")) == {"k1": "withdrawn", "k2": "retired"}
    with pytest.raises(CommandError, match="No signing key"):
        call_command("signing_key_retire", "k9")
    assert AuditEntry.objects.filter(action__startswith="signing_key.").count() == 4


def test_private_key_is_not_stored_in_clear():
    call_command("signing_key_create", kid="k1")
    key = SigningKey.objects.get()
    assert len(bytes(key.private_key_encrypted)) == 1 + 12 + 32 + 16  # format, nonce, seed, tag
