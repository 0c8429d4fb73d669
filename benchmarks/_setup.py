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
# Our own labelled queries (benchmarks/data/README.md): public corpus and demo runbooks, fit and holdout.
OWN_QUERIES = ROOT / "benchmarks" / "data" / "queries.jsonl"
DEMO_PREFIX = "demo/"


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


def load_corpus(*, demo: bool = False) -> None:
    """Import ../shared/data/runbooks/*.jsonl (upsert: a re-run changes nothing) and embed it.

    ``demo``: also the demo runbooks (runbooks/demo_data), disabled until ``use_collection("demo")``.
    """
    from django.db import transaction

    from runbooks.demo import demo_runbooks_ensure
    from runbooks.importers import runbooks_import
    from runbooks.models import Runbook
    from runbooks.services import runbooks_embed

    paths = sorted(CORPUS.glob("*.jsonl"))
    with transaction.atomic():
        report = runbooks_import(paths=paths)
        slugs = [outcome.slug for outcome in report.outcomes]
        if demo:
            demo_runbooks_ensure()
        # This database belongs to the benchmark: anything else in it would skew the results.
        others = Runbook.objects.exclude(slug__in=slugs)
        (others.exclude(slug__startswith=DEMO_PREFIX) if demo else others).delete()
    embed = runbooks_embed()
    use_collection("public")
    settle()
    print(f"corpus: {report.summary()}; embeddings: {embed.embedded} embedded, {embed.unchanged} unchanged")


def settle() -> None:
    """VACUUM ANALYZE the runbooks before measuring: after an import, autovacuum would otherwise clean the table
    and its HNSW index during the run, and approximate scans under a vacuum of the graph found other neighbours
    (two of eight conversation runs on a fresh or just-rewritten database gave other first runbooks; session 13)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE runbooks")


def use_collection(name: str) -> None:
    """Search one collection at a time, as a deployment has one: enable it, disable the other."""
    from runbooks.models import Runbook

    demo = Runbook.objects.filter(slug__startswith=DEMO_PREFIX)
    # Only the rows that change: rewriting every row per conversation left dead tuples for autovacuum mid-run.
    demo.exclude(enabled=name == "demo").update(enabled=name == "demo")
    Runbook.objects.exclude(pk__in=demo.values("pk")).exclude(enabled=name == "public").update(
        enabled=name == "public")


def dev_queries() -> list[dict]:
    with DEV_QUERIES.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def labelled_queries() -> list[dict]:
    """Every labelled query in one shape: id, query, gold (tuple of slugs), collection, kind, split, set.

    The dev split of ../shared is public-corpus alerts (split "dev"); ours (benchmarks/data/queries.jsonl)
    are "fit" or "holdout" (the holdout part is never used by a fit)."""
    rows = [
        {
            "id": q["id"],
            "query": q["query"],
            "gold": (q["gold_slug"],) if q["gold_slug"] else (),
            "collection": "public",
            "kind": "alert" if q["gold_slug"] else "none",
            "split": "dev",
        }
        for q in dev_queries()
    ]
    if OWN_QUERIES.is_file():
        with OWN_QUERIES.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    q = json.loads(line)
                    rows.append({**q, "gold": tuple(q["gold_slugs"])})
    return rows
