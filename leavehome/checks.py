"""System checks of a deployment's settings, run by ``manage.py check --deploy`` (and CI)."""

from django.conf import settings
from django.core import checks

UNDELIVERED_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
}


@checks.register(checks.Tags.security, deploy=True)
def email_is_delivered(app_configs, **kwargs):
    if settings.EMAIL_BACKEND in UNDELIVERED_BACKENDS:
        return [
            checks.Warning(
                f"EMAIL_BACKEND is {settings.EMAIL_BACKEND}: e-mail is not delivered, so venue owners "
                "never receive their verification links.",
                hint="Set EMAIL_HOST (SMTP) and leave EMAIL_BACKEND unset.",
                id="leavehome.W001",
            )
        ]
    return []


@checks.register(checks.Tags.security, deploy=True)
def served_over_https(app_configs, **kwargs):
    if settings.INSECURE_PLAIN_HTTP:
        return [
            checks.Warning(
                "INSECURE_PLAIN_HTTP is on: pages, logins and the phone API are served over plain HTTP "
                "with cookies anyone on the network can read.",
                hint="Only for a local trial. Unset it and put nginx with TLS in front (deploy/nginx.conf).",
                id="leavehome.W002",
            )
        ]
    return []
