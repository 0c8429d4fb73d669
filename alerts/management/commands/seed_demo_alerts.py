from django.core.management.base import BaseCommand

from alerts.demo import DEMO_RECEIVER, demo_alerts_ensure


class Command(BaseCommand):
    help = (
        "Store a few demo alerts as Alertmanager would post them (receiver demo-alertmanager; once: re-running "
        "changes nothing). `make run` runs it; its worker then recommends runbooks for them (/alerts/)."
    )

    def handle(self, *args, **options):
        stored = demo_alerts_ensure()
        if stored:
            self.stdout.write(self.style.SUCCESS(f"Demo alerts: {stored} stored (receiver {DEMO_RECEIVER})."))
        else:
            self.stdout.write(f"Demo alerts: already stored (receiver {DEMO_RECEIVER} exists).")
