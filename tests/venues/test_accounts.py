"""Owner accounts: sign-up with e-mail verification, log-in with lockout, password reset."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

pytestmark = pytest.mark.django_db

PASSWORD = "tea-house-on-nathan-road-7"
# The defaults of ACCOUNT_MAIL_RATE_ADDRESS and ACCOUNT_MAIL_RATE_CLIENT.
ADDRESS_LIMIT, CLIENT_LIMIT = 3, 10


def _link(message) -> str:
    return re.search(r"https?://\S+", message.body).group(0)


def _sign_up(client, email="new@example.com"):
    return client.post(
        "/accounts/signup/", {"email": email, "full_name": "Ada Chan", "password1": PASSWORD, "password2": PASSWORD}
    )


def test_sign_up_mails_a_link_that_activates_and_logs_in(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _sign_up(client, email="New@Example.com")
    assert "new@example.com" in response.content.decode()
    user = get_user_model().objects.get(username="new@example.com")
    assert not user.is_active
    assert client.post("/accounts/login/", {"username": "new@example.com", "password": PASSWORD}).status_code == 200

    (message,) = mail.outbox
    assert message.to == ["new@example.com"]
    response = client.get(_link(message), follow=True)
    assert response.redirect_chain[-1][0] == "/venues/"
    user.refresh_from_db()
    assert user.is_active and response.context["user"] == user


def test_a_forged_verification_link_fails(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _sign_up(client)
    link = _link(mail.outbox[0])
    response = client.get(link[:-3] + "xyz/")
    assert response.status_code == 400
    assert not get_user_model().objects.get().is_active


def test_sign_up_with_a_taken_address_reveals_nothing_and_mails_the_owner(
    client, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _sign_up(client, email=owner.email)
    assert response.status_code == 200 and "Check your e-mail" in response.content.decode()
    assert get_user_model().objects.count() == 1
    assert "/accounts/password/reset/" in mail.outbox[0].body


def test_signing_up_again_before_verifying_sends_a_fresh_working_link(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _sign_up(client)
        _sign_up(client)
    assert get_user_model().objects.count() == 1
    assert len(mail.outbox) == 2 and "verify" in mail.outbox[1].subject
    client.get(_link(mail.outbox[1]))
    assert get_user_model().objects.get().is_active


def test_lockout_page_is_translated(client, owner, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post(
            "/accounts/login/", {"username": owner.email, "password": "wrong"}, HTTP_ACCEPT_LANGUAGE="zh-hant"
        )
    assert response.status_code == 429
    assert "登入失敗次數過多" in response.content.decode()


def test_weak_or_mismatched_passwords_are_refused(client):
    response = client.post(
        "/accounts/signup/", {"email": "a@example.com", "password1": "12345678", "password2": "12345678"}
    )
    assert "too common" in response.content.decode()
    assert not get_user_model().objects.exists()


def test_log_in_by_e_mail_and_log_out(client, owner):
    response = client.post("/accounts/login/", {"username": "OWNER@example.com", "password": "correct horse battery 9"})
    assert response.status_code == 302 and response["Location"] == "/venues/"
    client.post("/accounts/logout/")
    assert client.get("/venues/").status_code == 302


def test_repeated_failed_logins_lock_the_account_out(client, owner, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post("/accounts/login/", {"username": owner.email, "password": "wrong"}).status_code == 200
    # The failure that reaches the limit is answered with the lockout.
    assert client.post("/accounts/login/", {"username": owner.email, "password": "wrong"}).status_code == 429
    # Locked: even the right password is refused now.
    response = client.post("/accounts/login/", {"username": owner.email, "password": "correct horse battery 9"})
    assert response.status_code == 429


def test_password_reset_by_mail(client, owner):
    client.post("/accounts/password/reset/", {"email": owner.email})
    (message,) = mail.outbox
    form_url = client.get(_link(message)).url  # Django swaps the token for a session marker
    new = "a-brand-new-password-42"
    response = client.post(form_url, {"new_password1": new, "new_password2": new})
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password(new)


def test_owner_changes_their_details(client, owner):
    client.force_login(owner)
    client.post("/accounts/details/", {"full_name": "Mr Wong"})
    owner.refresh_from_db()
    assert owner.first_name == "Mr Wong"


def test_password_reset_mails_to_one_address_are_limited_from_any_client(client, owner, settings):
    answers = [
        client.post("/accounts/password/reset/", {"email": owner.email}, REMOTE_ADDR=f"10.0.0.{n}") for n in range(15)
    ]
    assert len(mail.outbox) == ADDRESS_LIMIT
    assert [answer.status_code for answer in answers[: len(mail.outbox)]] == [302] * len(mail.outbox)
    assert answers[-1].status_code == 429
    assert "try again in an hour" in answers[-1].content.decode()


def test_password_resets_from_one_client_are_limited_across_addresses(client, settings):
    limit = CLIENT_LIMIT
    for n in range(limit + 2):
        get_user_model().objects.create_user(username=f"o{n}@example.com", email=f"o{n}@example.com", password="x")
    answers = [client.post("/accounts/password/reset/", {"email": f"o{n}@example.com"}) for n in range(limit + 2)]
    assert len(mail.outbox) == limit
    assert answers[-1].status_code == 429
    # Another client is not held back by this one.
    assert (
        client.post("/accounts/password/reset/", {"email": "o0@example.com"}, REMOTE_ADDR="10.9.9.9").status_code == 302
    )


def test_a_throttled_reset_looks_the_same_for_an_address_without_an_account(client, owner, settings):
    for email in (owner.email, "nobody@example.com"):
        for _ in range(ADDRESS_LIMIT):
            client.post("/accounts/password/reset/", {"email": email})
        assert client.post("/accounts/password/reset/", {"email": email}).status_code == 429


def test_sign_up_mails_to_one_address_are_limited(client, django_capture_on_commit_callbacks, settings):
    answers = []
    for n in range(8):
        with django_capture_on_commit_callbacks(execute=True):
            answers.append(_sign_up(client.__class__(REMOTE_ADDR=f"10.0.1.{n}"), email="flood@example.com"))
    assert len(mail.outbox) == ADDRESS_LIMIT
    assert answers[-1].status_code == 429


def test_sign_ups_from_one_client_are_limited_across_addresses(client, django_capture_on_commit_callbacks, settings):
    limit = CLIENT_LIMIT
    for n in range(limit + 1):
        with django_capture_on_commit_callbacks(execute=True):
            answer = _sign_up(client, email=f"new{n}@example.com")
    assert len(mail.outbox) == limit
    assert answer.status_code == 429
    assert not get_user_model().objects.filter(username=f"new{limit}@example.com").exists()


def test_mailed_links_start_with_site_url_whatever_the_host(
    client, settings, owner, django_capture_on_commit_callbacks
):
    # Behind nginx, "Host: $host" drops a non-default port: the link must not depend on it.
    settings.SITE_URL = "https://leavehome.example:8443"
    with django_capture_on_commit_callbacks(execute=True):
        _sign_up(client, email="port@example.com")
    client.post("/accounts/password/reset/", {"email": owner.email}, HTTP_HOST="localhost")
    verification, reset = mail.outbox
    assert _link(verification).startswith("https://leavehome.example:8443/accounts/verify/")
    assert _link(reset).startswith("https://leavehome.example:8443/accounts/password/reset/")
