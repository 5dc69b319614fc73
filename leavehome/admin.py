from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite
from django_otp.plugins.otp_totp.models import TOTPDevice

from leavehome.login_slowdown import LoginSlowdownFormMixin
from leavehome.models import AuditEntry


def admin_action_each(modeladmin, request, queryset, act, done_message) -> int:
    """Apply ``act(obj)`` to each selected object; returns how many succeeded.

    A refusal (ValidationError, ServiceError included) is shown as an error naming the object
    and the others go on; the count of those done is shown once, when there are any.
    """
    done = 0
    for obj in queryset:
        try:
            act(obj)
        except ValidationError as error:
            modeladmin.message_user(request, f"{obj}: {' '.join(error.messages)}", level=messages.ERROR)
        else:
            done += 1
    if done:
        modeladmin.message_user(request, done_message(done), level=messages.SUCCESS)
    return done


class StaffPasswordLoginForm(LoginSlowdownFormMixin, AdminAuthenticationForm):
    """The admin login without a second factor (OTP_ADMIN_REQUIRED off), in turn when slowed."""


class StaffLoginForm(LoginSlowdownFormMixin, OTPAdminAuthenticationForm):
    """The two-factor admin login, in turn when slowed (leavehome/login_slowdown.py), minus
    django-otp's habit of re-rendering the password.

    When the password is right but the one-time code is missing or wrong, django-otp turns on
    the password widget's ``render_value`` so the form comes back filled in: the password then
    sits in the page's HTML (browser caches, screenshots, "view source"). Here it is typed again.
    """

    def _update_form(self, user):
        super()._update_form(user)
        if "password" in self.fields:
            self.fields["password"].widget.render_value = False


class ReadOnlyAdminMixin:
    """For records that services write and staff only read (audit trail, signing keys)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail, read-only: entries are written by the services that act."""

    list_display = ("created_at", "actor", "action", "object_type", "object_id")
    list_filter = ("action", "object_type")
    search_fields = ("object_id", "actor__username", "action")
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "actor", "action", "object_type", "object_id", "detail")


class OneStepOTPAdminAuthenticationForm(StaffLoginForm):
    """Username, password and TOTP code in one submission.

    django-otp asks for a device choice it can list only after the password was checked, so
    the first login always failed once ("Please select a device"). A staff member with one
    TOTP device (the way totp_enrol sets them up) needs no choice: that device is used.
    With several, the list is shown as before.
    """

    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        if device is None and not self.cleaned_data.get("otp_device"):
            devices = list(TOTPDevice.objects.devices_for_user(user, confirmed=True)[:2])
            if len(devices) == 1:
                device = devices[0]
        return device


class LeaveHomeOTPAdminSite(OTPAdminSite):
    """The admin site when OTP_ADMIN_REQUIRED: django-otp's, with the one-step login form
    (which never writes the typed password back into the page)."""

    login_form = OneStepOTPAdminAuthenticationForm
