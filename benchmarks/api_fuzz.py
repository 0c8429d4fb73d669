"""API fuzzing at depth: schemathesis against the live OpenAPI schema (in-process WSGI), as a normal user
authenticated by token, every operation, derandomized, at least 200 examples per operation.

Prints one row per operation: examples, server errors (5xx), schema mismatches (undocumented status,
content type or body), statuses seen, then a sample of each failure. Runs on its own database
(EMBEDDED_PG_DBNAME=aihelper_bench_fuzz), never the dev data. Usage:

    .venv/bin/python benchmarks/api_fuzz.py [--examples 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def django_setup() -> None:
    os.environ["EMBEDDED_PG_DBNAME"] = "aihelper_bench_fuzz"
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("STATIC_MANIFEST", "0")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ["LLM_PROVIDER"] = "offline"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aihelper.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def fixtures() -> dict:
    """The chat tests' small library (one runbook restricted to dba) and a normal user with a token."""
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    from runbooks.services import runbook_upsert, runbooks_embed
    from tests.aihelper.conftest import LIBRARY, RESTRICTED

    for row in [*LIBRARY, RESTRICTED]:
        data = {key: value for key, value in row.items() if key != "slug"}
        runbook_upsert(slug=row["slug"], data=data, allowed_groups=["dba"] if row is RESTRICTED else [])
    runbooks_embed()
    user, _ = User.objects.get_or_create(username="fuzzer")
    token, _ = Token.objects.get_or_create(user=user)
    return {"Authorization": f"Token {token.key}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", "200")))
    args = parser.parse_args()
    django_setup()
    from tests.security.fuzz import fuzz_operation, load_schema, operation_labels

    headers = fixtures()
    schema = load_schema()
    rows = []
    for label in operation_labels(schema):
        started = time.perf_counter()
        result = fuzz_operation(schema, label, examples=args.examples, headers=headers)
        rows.append((result, time.perf_counter() - started))

    print(f"\nschemathesis, {args.examples} examples per operation (derandomized), token auth as a normal user\n")
    print(f"| {'operation':<52} | examples | 5xx | schema mismatches | statuses seen                  | s     |")
    print(f"|{'-' * 54}|----------|-----|-------------------|--------------------------------|-------|")
    for result, seconds in rows:
        statuses = ", ".join(f"{code}x{count}" for code, count in sorted(result.statuses.items()))
        print(f"| {result.operation:<52} | {result.examples:>8} | {result.server_errors:>3} | "
              f"{result.schema_mismatches:>17} | {statuses:<30} | {seconds:>5.1f} |")
    print()
    for result, _ in rows:
        for sample in result.samples[:3]:
            print(f"- {result.operation}: {sample[:300]}")


if __name__ == "__main__":
    main()
