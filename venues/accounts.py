"""Owner accounts: sign-up with e-mail verification (services).

An owner's username is their e-mail address, lower-cased. A new account is inactive until
the link mailed to the address is followed, so nobody registers venues under an address
they do not control. The link carries Django's password-reset style token, which is bound
to the account's state and expires after PASSWORD_RESET_TIMEOUT.

Signing up with an address that already has an active account shows the same page as a
new sign-up, and the mail tells the real owner how to reset their password instead: the
form does not reveal which addresses have accounts. Signing up again with an address that
was never verified sends a fresh link (Django's password reset skips inactive accounts).
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from leavehome.audit import audit_record


def _mail(*, to: str, template: str, context: dict) -> None:
    subject = render_to_string(f"registration/{template}_subject.txt", context).strip()
    body = render_to_string(f"registration/{template}_email.txt", context)
    send_mail(subject, body, None, [to])


def owner_sign_up(*, email: str, password: str, full_name: str = "", base_url: str):
    """Create an inactive owner account and mail it a verification link.

    ``base_url`` is the scheme and host the link points at (from the request). Returns the
    new user, or None when the address already had an account (that owner is mailed a hint).
    """
    user_model = get_user_model()
    email = email.strip().lower()
    with transaction.atomic():
        existing = user_model.objects.select_for_update().filter(username=email).first()
        if existing is not None and existing.is_active:
            transaction.on_commit(
                lambda: _mail(
                    to=email,
                    template="account_exists",
                    context={"base_url": base_url, "reset_path": reverse("password_reset")},
                )
            )
            return None
        if existing is not None:
            # Never verified (the first link expired or was lost): the newest sign-up's password
            # wins, and only whoever reads the mailbox can activate it.
            user = existing
            user.set_password(password)
            user.first_name = full_name
            user.save(update_fields=["password", "first_name"])
        else:
            user = user_model.objects.create_user(
                username=email, email=email, password=password, first_name=full_name, is_active=False
            )
        audit_record(actor=None, action="owner.sign_up", obj=user)
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    link = base_url + reverse("account_verify", kwargs={"uidb64": uid, "token": token})
    transaction.on_commit(lambda: _mail(to=email, template="verification", context={"user": user, "link": link}))
    return user


@transaction.atomic
def owner_verify(*, uidb64: str, token: str):
    """Activate the account a verification link names; the user, or None for a bad link."""
    user_model = get_user_model()
    try:
        user = user_model.objects.get(pk=force_str(urlsafe_base64_decode(uidb64)))
    except (ValueError, TypeError, OverflowError, user_model.DoesNotExist):
        return None
    if not default_token_generator.check_token(user, token):
        return None
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
        audit_record(actor=user, action="owner.verify", obj=user)
    return user


def owner_details_change(*, user, full_name: str):
    """Change what an owner may change about themselves."""
    user.first_name = full_name
    user.save(update_fields=["first_name"])
    return user
