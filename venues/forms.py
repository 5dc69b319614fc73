"""Forms of the owners' pages. They validate only; the services do the work."""

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, SetPasswordMixin
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from leavehome.login_slowdown import LoginSlowdownFormMixin
from venues.models import Category, District, Venue


class VenueForm(forms.Form):
    """One venue, from the registration page or from one row of an import CSV."""

    category = forms.ChoiceField(label=_("Category"), choices=Category.choices)
    name_en = forms.CharField(
        label=_("Name (English)"),
        max_length=Venue._meta.get_field("name_en").max_length,
        help_text=_("For a taxi: its licence plate, e.g. AB1234."),
    )
    name_zh = forms.CharField(
        label=_("Name (Chinese)"),
        max_length=Venue._meta.get_field("name_zh").max_length,
        required=False,
        help_text=_("Required, except for a taxi."),
    )
    address_en = forms.CharField(label=_("Address (English)"), max_length=300, required=False)
    address_zh = forms.CharField(label=_("Address (Chinese)"), max_length=300, required=False)
    district = forms.ChoiceField(label=_("District"), choices=[("", "—"), *District.choices], required=False)

    def clean(self):
        data = super().clean()
        # A taxi's name is its plate, checked and normalised by the service (venue_build).
        if data.get("category") != Category.TAXI and not data.get("name_zh"):
            self.add_error("name_zh", _("This field is required."))
        return data


class VenueImportForm(forms.Form):
    # 5,000 branches of a few hundred bytes each fit easily; anything larger is not a branch list.
    MAX_BYTES = 5 * 1024 * 1024

    file = forms.FileField(
        label=_("CSV file of branches"),
        help_text=_("UTF-8, one branch a row; columns: name_en, name_zh, address_en, address_zh, district, category."),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise ValidationError(_("The file is larger than 5 MB."), code="too_large")
        return upload


class EmailAuthenticationForm(LoginSlowdownFormMixin, AuthenticationForm):
    """Owners log in with their e-mail address (stored as the username), in turn when slowed."""

    username = forms.EmailField(label=_("E-mail"), widget=forms.EmailInput(attrs={"autofocus": True}))

    def clean_username(self):
        return self.cleaned_data["username"].strip().lower()


class SignUpForm(SetPasswordMixin, forms.Form):
    email = forms.EmailField(label=_("E-mail"))
    full_name = forms.CharField(label=_("Your name"), max_length=150, required=False)
    password1, password2 = SetPasswordMixin.create_password_fields()

    def clean_email(self):
        return self.cleaned_data["email"].strip().lower()

    def clean(self):
        self.validate_passwords()
        email = self.cleaned_data.get("email", "")
        candidate = get_user_model()(username=email, email=email, first_name=self.cleaned_data.get("full_name", ""))
        self.validate_password_for_user(candidate)
        return super().clean()


class AccountForm(forms.Form):
    """What an owner may change about themselves; the e-mail (their login) changes via support."""

    full_name = forms.CharField(label=_("Your name"), max_length=150, required=False)
