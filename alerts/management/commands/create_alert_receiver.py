from django.core.management.base import BaseCommand, CommandError

from alerts.receivers import ReceiverNameTaken, alert_receiver_create


class Command(BaseCommand):
    help = (
        "Create an alert receiver and print its bearer token, once, as the last line (docs/alerts.md). "
        "Revoke it with revoke_alert_receiver."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="e.g. the Alertmanager receiver or the Grafana contact point that posts")

    def handle(self, *args, name, **options):
        try:
            created = alert_receiver_create(name=name)
        except (ReceiverNameTaken, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(
            f"Receiver {created.receiver.name!r} created. Its token follows; it is shown only this once. "
            "Send it as 'Authorization: Bearer <token>'."
        )
        self.stdout.write(created.token)
