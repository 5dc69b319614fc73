from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from notifications.models import Device
from notifications.push.delivery import push_test_send


class Command(BaseCommand):
    help = "Send a test push (no notification, no content) to a device's push channel and say what happened."

    def add_arguments(self, parser):
        parser.add_argument("device_id", help="the device's id (UUID)")

    def handle(self, *args, device_id, **options):
        try:
            device = Device.objects.get(pk=device_id)
        except (Device.DoesNotExist, ValidationError) as error:
            raise CommandError(f"No device {device_id}.") from error
        self.stdout.write(push_test_send(device=device))
