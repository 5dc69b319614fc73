from django.core.management.base import BaseCommand, CommandError

from venues.keys import SigningKeyError, signing_key_retire, signing_key_withdraw
from venues.models import SigningKey


class Command(BaseCommand):
    help = (
        "Retire a signing key (it signs nothing new, stays published), or with --withdraw take a retired "
        "key out of the JWKS once no valid code depends on it."
    )

    def add_arguments(self, parser):
        parser.add_argument("kid")
        parser.add_argument("--withdraw", action="store_true", help="unpublish a retired key")

    def handle(self, *args, kid, withdraw=False, **options):
        try:
            key = signing_key_withdraw(kid=kid) if withdraw else signing_key_retire(kid=kid)
        except SigningKey.DoesNotExist as error:
            raise CommandError(f"No signing key {kid}.") from error
        except SigningKeyError as error:
            raise CommandError(error.text) from error
        self.stdout.write(self.style.SUCCESS(f"Signing key {key.kid} is {key.status}."))
