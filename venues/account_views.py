"""Owner account pages: sign-up, verification, log-in and the rest of Django's auth views."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters

from venues.accounts import owner_details_change, owner_sign_up, owner_verify
from venues.forms import AccountForm, EmailAuthenticationForm, SignUpForm


class LoginView(auth_views.LoginView):
    form_class = EmailAuthenticationForm
    redirect_authenticated_user = True


class PasswordResetView(auth_views.PasswordResetView):
    """Django's, with the mailed link built from SITE_URL rather than the request's Host."""

    def form_valid(self, form):
        self.extra_email_context = {"base_url": settings.SITE_URL}
        return super().form_valid(form)


@sensitive_post_parameters("password1", "password2")
def sign_up(request):
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
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
