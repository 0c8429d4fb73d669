import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from aihelper.chat.retrieval import runbooks_find
from runbooks.search import InvalidQuery
from runbooks.selectors import operator_reader


def _result_json(result) -> dict:
    return {
        "slug": result.runbook.slug,
        "title": result.runbook.name,
        "confidence": result.confidence,
        "recommended": result.recommended,
    }


class Command(BaseCommand):
    help = "Search runbooks as a user would (hybrid search, confidence, presentation strategy)."

    def add_arguments(self, parser):
        parser.add_argument("query", nargs="?", help="the alert or problem text")
        parser.add_argument("--user", help="search as this user (RBAC applies); default: every enabled runbook")
        parser.add_argument("--limit", type=int, default=5)
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--queries", type=Path, help='JSON Lines file of {"id", "query"}: one JSON line out each')

    def handle(self, *args, query, user, limit, queries, **options):
        if (query is None) == (queries is None):
            raise CommandError("Give either a query text or --queries FILE.jsonl.")
        if limit < 1:
            raise CommandError("--limit must be at least 1.")
        reader = operator_reader()
        if user:
            reader = get_user_model().objects.filter(username=user).first()
            if reader is None:
                raise CommandError(f"No user named {user!r}.")
        if queries is not None:
            self._batch(queries, reader, limit)
            return
        try:
            outcome = runbooks_find(query=query, user=reader, limit=limit)
        except InvalidQuery as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(
                _dumps(
                    {
                        "query": outcome.query,
                        "strategy": outcome.strategy,
                        "truncated": outcome.truncated,
                        "degraded": outcome.degraded,
                        "results": [
                            _result_json(result) | {"components": result.components} for result in outcome.results
                        ],
                    }
                )
            )
            return
        if outcome.truncated:
            self.stdout.write(f"(query truncated to {len(outcome.query)} characters)")
        self.stdout.write(f"strategy: {outcome.strategy} (threshold {outcome.threshold})")
        for result in outcome.results:
            mark = "*" if result.recommended else " "
            self.stdout.write(
                f"{mark} {result.rank}. {result.confidence:.2f}  {result.runbook.slug}  {result.runbook.name}"
            )

    def _batch(self, path: Path, reader, limit: int) -> None:
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        with path.open("rb") as handle:
            for number, raw_bytes in enumerate(handle, start=1):
                if not raw_bytes.strip():
                    continue
                try:
                    item = _loads(raw_bytes.decode("utf-8"))
                    query_id, text = item.get("id"), item["query"]
                    if not isinstance(text, str):
                        raise TypeError("the query must be text")
                except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
                    self.stdout.write(_dumps({"id": None, "line": number, "error": 'expected {"id", "query"}'}))
                    continue
                try:
                    outcome = runbooks_find(query=text, user=reader, limit=limit)
                except InvalidQuery as exc:
                    self.stdout.write(
                        _dumps({"id": query_id, "strategy": "no_solutions", "results": [], "error": str(exc)})
                    )
                    continue
                self.stdout.write(
                    _dumps(
                        {
                            "id": query_id,
                            "strategy": outcome.strategy,
                            "results": [_result_json(r) for r in outcome.results],
                        }
                    )
                )


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _loads(raw: str):
    return json.loads(raw)
