from django.core.management.base import BaseCommand

from venues.keys import signing_key_rotate


class Command(BaseCommand):
    help = "Make a new active signing key; the old one is retired but stays in the JWKS for codes it signed."

    def add_arguments(self, parser):
        parser.add_argument("--kid", help="key id of the new key")

    def handle(self, *args, kid=None, **options):
        key = signing_key_rotate(kid=kid)
        self.stdout.write(self.style.SUCCESS(f"Signing key {key.kid} is active."))
