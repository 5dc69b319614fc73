from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from leavehome.lib.b64u import b64u_encode
from notifications.push.transports import vapid_key_load


class Command(BaseCommand):
    help = (
        "Print the VAPID public key (the applicationServerKey web apps subscribe with) of "
        "PUSH_VAPID_PRIVATE_KEY, or, with --generate, a new private key to put in that setting."
    )

    def add_arguments(self, parser):
        parser.add_argument("--generate", action="store_true", help="print a new P-256 private key (PEM)")

    def handle(self, *args, generate=False, **options):
        if generate:
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            self.stdout.write(pem.decode(), ending="")
            return
        if not settings.PUSH_VAPID_PRIVATE_KEY:
            raise CommandError("PUSH_VAPID_PRIVATE_KEY is not set (generate one with --generate).")
        public = vapid_key_load(settings.PUSH_VAPID_PRIVATE_KEY).public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.stdout.write(b64u_encode(public))
