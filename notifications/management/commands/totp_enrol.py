"""Enrol a staff member's authenticator app for the admin's two-factor login (django-otp TOTP).

    python manage.py totp_enrol USERNAME [--name "phone"]

Prints the otpauth:// URI and the same as a QR code to scan with any TOTP app (Google
Authenticator, Microsoft Authenticator, FreeOTP…). Run it on a server shell, as an operator:
the URI holds the device's secret, so it is shown once and never e-mailed.
"""

import io

import qrcode
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Create a TOTP device for a staff user and print its otpauth URI and QR code."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="A label for the device.")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        if not user.is_staff:
            raise CommandError(f"{username!r} is not staff: only staff log in to the admin.")
        device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
        qr = qrcode.QRCode(border=1)
        qr.add_data(device.config_url)
        picture = io.StringIO()
        qr.print_ascii(out=picture, invert=True)
        self.stdout.write(device.config_url)
        self.stdout.write(picture.getvalue())
        self.stdout.write(f"Scan this with {username}'s authenticator app; it is shown only once.")
