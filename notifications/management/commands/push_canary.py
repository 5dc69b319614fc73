"""Send the canary pushes now (beat does it every PUSH_CANARY_SECONDS) and say what happened.

    python manage.py push_canary

Exits non-zero when a canary push was not delivered, so it can gate a deployment.
"""

from django.core.management.base import BaseCommand, CommandError

from notifications.push.canary import push_canary_send


class Command(BaseCommand):
    help = "Send a test push to each canary device of PUSH_CANARY_DEVICES and report each outcome."

    def handle(self, *args, **options):
        outcomes = push_canary_send()
        if not outcomes:
            raise CommandError("No canary: set PUSH_CANARY_DEVICES to your own devices' ids (docs/push.md).")
        for device_id, outcome in outcomes.items():
            self.stdout.write(f"{device_id} ({outcome.kind or 'no channel'}): {outcome.status}. {outcome.text}")
        if any(outcome.status != "delivered" for outcome in outcomes.values()):
            raise CommandError("A canary push was not delivered.")
