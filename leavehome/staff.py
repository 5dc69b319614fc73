"""Staff accounts (services): health officials and venue administrators, made by an operator."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from leavehome.audit import audit_record


def staff_user_create(*, username: str, email: str, group_name: str, password: str):
    """Create a staff user in ``group_name`` (which grants what they may do in the admin).

    Raises ValidationError for an unknown group, a taken username or a weak password; nothing
    is written then. The user logs in to /admin/ and, where OTP_ADMIN_REQUIRED is on, needs a
    TOTP device next (``manage.py totp_enrol``).
    """
    user_model = get_user_model()
    group = Group.objects.filter(name=group_name).first()
    if group is None:
        names = ", ".join(sorted(Group.objects.values_list("name", flat=True))) or "none"
        raise ValidationError(f"No group {group_name!r}; the groups are: {names}.")
    if user_model.objects.filter(username=username).exists():
        raise ValidationError(f"A user {username!r} exists already.")
    user = user_model(username=username, email=email, is_staff=True)
    validate_password(password, user)
    with transaction.atomic():
        user.set_password(password)
        user.save()
        user.groups.add(group)
        audit_record(actor=None, action="staff.create", obj=user, group=group.name)
    return user
