from django.core.management.base import BaseCommand

from runbooks.demo import demo_runbooks_ensure, demo_users_ensure


class Command(BaseCommand):
    help = "Create demo users, groups and runbooks (idempotent: re-running changes nothing)."

    def handle(self, *args, **options):
        for account, created in demo_users_ensure():
            state = "created" if created else "exists, password unchanged"
            role = "staff" if account.staff else "engineer"
            self.stdout.write(
                f"  {role:8} {account.username:6} password: {account.password:16} groups: "
                f"{', '.join(account.groups)} ({state})"
            )
        counts = demo_runbooks_ensure()
        self.stdout.write(self.style.SUCCESS(
            f"Demo runbooks: {counts['created']} created, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged."
        ))
