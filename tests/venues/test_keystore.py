import pytest

from venues import keystore
from venues.models import VenueCode


@pytest.mark.django_db
def test_vk_is_16_bytes_and_opens_only_on_its_own_row(venue, owner, signing_key):
    code = VenueCode.objects.get(venue=venue, version=1)
    vk = keystore.vk_decrypt(code)
    assert len(vk) == 16
    assert vk not in bytes(code.vk_encrypted)
    # The same sealed bytes claimed for another version (or venue) do not open.
    code.version = 2
    with pytest.raises(keystore.KeystoreError):
        keystore.vk_decrypt(code)


def test_vk_does_not_open_under_another_tracing_key(settings):
    sealed = keystore.vk_encrypt(venue_id="v", version=1, vk=b"k" * 16)
    code = VenueCode(venue_id="v", version=1, vk_encrypted=sealed)
    assert keystore.vk_decrypt(code) == b"k" * 16
    settings.TRACING_KEY = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE"
    with pytest.raises(keystore.KeystoreError):
        keystore.vk_decrypt(code)


@pytest.mark.django_db
def test_private_key_is_stored_sealed_and_bound_to_its_kid(signing_key):
    private_key = keystore.private_key_load(signing_key)
    assert private_key.public_key().public_bytes_raw() == bytes(signing_key.public_key)
    signing_key.kid = "another"
    with pytest.raises(keystore.KeystoreError):
        keystore.private_key_load(signing_key)
