from django.core.management.base import BaseCommand, CommandError

from alerts.receivers import ReceiverNotFound, alert_receiver_revoke


class Command(BaseCommand):
    help = "Revoke an alert receiver's token: its posts get 401 from now on (safe to re-run)."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        try:
            receiver = alert_receiver_revoke(name=name)
        except ReceiverNotFound as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Receiver {receiver.name!r} revoked at {receiver.revoked_at:%Y-%m-%d %H:%M:%S %Z}.")
