"""Shared set-up for the retrieval benchmark and the confidence fit: a dedicated database, the corpus."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CORPUS = SHARED / "runbooks"
DEV_QUERIES = SHARED / "eval" / "alert_queries_dev.jsonl"


def django_setup(dbname: str) -> None:
    """Point Django at its own database (never the dev data) and migrate it."""
    if not DEV_QUERIES.is_file() or not list(CORPUS.glob("*.jsonl")):
        print(f"SKIP: ../shared/data is absent ({SHARED}); the public corpus and dev queries are needed.")
        sys.exit(0)
    os.environ["EMBEDDED_PG_DBNAME"] = dbname
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aihelper.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def load_corpus() -> None:
    """Import ../shared/data/runbooks/*.jsonl (upsert: a re-run changes nothing) and embed it."""
    from django.db import transaction

    from runbooks.importers import runbooks_import
    from runbooks.models import Runbook
    from runbooks.services import runbooks_embed

    paths = sorted(CORPUS.glob("*.jsonl"))
    with transaction.atomic():
        report = runbooks_import(paths=paths)
        slugs = [outcome.slug for outcome in report.outcomes]
        # This database belongs to the benchmark: anything else in it would skew the results.
        Runbook.objects.exclude(slug__in=slugs).delete()
    embed = runbooks_embed()
    print(f"corpus: {report.summary()}; embeddings: {embed.embedded} embedded, {embed.unchanged} unchanged")


def dev_queries() -> list[dict]:
    with DEV_QUERIES.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
