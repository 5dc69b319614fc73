"""Owner account pages: sign-up, verification, log-in and the rest of Django's auth views."""

import hashlib

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters

from leavehome.ratelimit import Limit, client_address, rate_limits_hit
from venues.accounts import owner_details_change, owner_sign_up, owner_verify
from venues.forms import AccountForm, EmailAuthenticationForm, SignUpForm


def _account_mail_throttled(request, email: str) -> bool:
    """Count one account e-mail to ``email`` asked from this client; True when over either limit.

    Every valid request counts, whether or not an account exists, so the answer reveals nothing.
    The e-mail address is counted by its SHA-256: the cache holds no address in clear.
    """
    address = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    wait = rate_limits_hit(
        [
            Limit("account_mail_address", address, settings.ACCOUNT_MAIL_RATE_ADDRESS),
            Limit("account_mail_client", client_address(request.META), settings.ACCOUNT_MAIL_RATE_CLIENT),
        ]
    )
    return wait is not None


def _throttled(request, template, form):
    form.add_error(None, _("Too many e-mails were asked for; please try again in an hour."))
    return render(request, template, {"form": form}, status=429)


class LoginView(auth_views.LoginView):
    form_class = EmailAuthenticationForm
    redirect_authenticated_user = True


class PasswordResetView(auth_views.PasswordResetView):
    """Django's, with the mailed link built from SITE_URL rather than the request's Host, and
    at most so many e-mails per address and per client (_account_mail_throttled)."""

    def form_valid(self, form):
        if _account_mail_throttled(self.request, form.cleaned_data["email"]):
            return _throttled(self.request, self.template_name, form)
        self.extra_email_context = {"base_url": settings.SITE_URL}
        return super().form_valid(form)


@sensitive_post_parameters("password1", "password2")
def sign_up(request):
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if _account_mail_throttled(request, form.cleaned_data["email"]):
            return _throttled(request, "registration/signup.html", form)
        owner_sign_up(
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            full_name=form.cleaned_data["full_name"],
            # Not the request's Host: behind a proxy it may lack the port, or be forged.
            base_url=settings.SITE_URL,
        )
        return render(request, "registration/signup_done.html", {"email": form.cleaned_data["email"]})
    return render(request, "registration/signup.html", {"form": form})


def verify(request, uidb64, token):
    user = owner_verify(uidb64=uidb64, token=token)
    if user is None:
        return render(request, "registration/verify_failed.html", status=400)
    # The link proved control of the address; log in with the model backend (axes guards passwords).
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, _("Your e-mail address is verified. Register your first venue."))
    return redirect("venues:list")


@login_required
def account_details(request):
    form = AccountForm(request.POST or None, initial={"full_name": request.user.first_name})
    if request.method == "POST" and form.is_valid():
        owner_details_change(user=request.user, full_name=form.cleaned_data["full_name"])
        messages.success(request, _("Your details are saved."))
        return redirect("account_details")
    return render(request, "registration/account.html", {"form": form})
