"""Create a staff account in a group: a health official or a venue administrator.

    python manage.py staff_create USERNAME --email ada@health.example --group "Health officials"

The password is asked for twice on the terminal, or read from standard input with
``--password-stdin`` (for provisioning scripts; never put it on the command line, where
``ps`` shows it). Then enrol their authenticator app with ``manage.py totp_enrol USERNAME``.
"""

import getpass
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from leavehome.staff import staff_user_create


class Command(BaseCommand):
    help = "Create a staff user in a group (Health officials, Venue administrators)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", required=True)
        parser.add_argument("--group", required=True, help='"Health officials" or "Venue administrators".')
        parser.add_argument("--password-stdin", action="store_true", help="Read the password from standard input.")

    def handle(self, *args, username, email, group, password_stdin, **options):
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Password (again): ") != password:
                raise CommandError("The passwords differ.")
        try:
            user = staff_user_create(username=username, email=email, group_name=group, password=password)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(f"Created {user.username} in {group!r}. Next: manage.py totp_enrol {user.username}")
