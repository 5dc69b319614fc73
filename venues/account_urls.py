"""Owner accounts, included at ``accounts/`` without a namespace: Django's auth views and
e-mail templates reverse these names (``login``, ``password_reset_confirm``…) unqualified."""

from django.contrib.auth import views as auth_views
from django.urls import path

from venues import account_views

urlpatterns = [
    path("login/", account_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", account_views.sign_up, name="account_signup"),
    path("verify/<uidb64>/<token>/", account_views.verify, name="account_verify"),
    path("details/", account_views.account_details, name="account_details"),
    path("password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", account_views.PasswordResetView.as_view(), name="password_reset"),
    path("password/reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password/reset/complete/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]
