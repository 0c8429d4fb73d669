import json

from django.core.management.base import BaseCommand, CommandError

from aihelper.ops.verification import verify


class Command(BaseCommand):
    help = (
        "Verify the deployment end to end: database, embeddings, login, search, chat audit trail, click "
        "tracking, analytics. Exit code 0 only if every check passed. Leaves no data behind."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", help="run checks 3-7 over HTTP against this running server")
        parser.add_argument("--username", help="log in as this user instead of a temporary one")
        parser.add_argument("--password", help="password for --username")
        parser.add_argument("--query", help="the query that must produce a recommendation")
        parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")

    def handle(self, *args, base_url, username, password, query, json: bool, **options):
        if bool(username) != bool(password):
            raise CommandError("--username and --password go together.")
        if base_url and not base_url.startswith(("http://", "https://")):
            raise CommandError("--base-url must start with http:// or https://")

        def show(result):
            if json:
                return
            status = self.style.SUCCESS("PASS") if result.ok else self.style.ERROR("FAIL")
            self.stdout.write(f"{result.number}. {result.name:<11} {status}  {result.ms:>8.1f} ms  {result.detail}")

        if not json:
            self.stdout.write(f"{'check':<14} {'':4}  {'ms':>11}  detail")
        results = verify(base_url=base_url, username=username, password=password, query=query, on_result=show)
        failed = [result for result in results if not result.ok]
        if json:
            self.stdout.write(_json_dump(results))
        else:
            summary = f"{len(results) - len(failed)} passed, {len(failed)} failed"
            self.stdout.write(self.style.ERROR(summary) if failed else self.style.SUCCESS(summary))
        if failed:
            raise SystemExit(1)


def _json_dump(results) -> str:
    return json.dumps(
        {
            "ok": all(result.ok for result in results),
            "checks": [result.__dict__ for result in results],
        },
        indent=2,
    )
