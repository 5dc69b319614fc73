from django.core.management.base import BaseCommand, CommandError

from venues.keys import SigningKeyError, signing_key_create


class Command(BaseCommand):
    help = "Create the first active Ed25519 code signing key (private half encrypted under KEY_ENCRYPTION_KEY)."

    def add_arguments(self, parser):
        parser.add_argument("--kid", help="key id to publish (default: today's date and a random suffix)")
        parser.add_argument("--if-missing", action="store_true", help="do nothing when a key is active already")

    def handle(self, *args, kid=None, if_missing=False, **options):
        try:
            key = signing_key_create(kid=kid)
        except SigningKeyError as error:
            if if_missing:
                self.stdout.write("A signing key is active already.")
                return
            raise CommandError(error.text) from error
        self.stdout.write(self.style.SUCCESS(f"Created active signing key {key.kid}."))
