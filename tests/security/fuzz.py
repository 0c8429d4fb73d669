"""Shared by tests/security/test_api_fuzz.py and benchmarks/api_fuzz.py: schemathesis generates requests
from the live OpenAPI schema (/api/schema/, served in-process through WSGI) and every response is
checked: no 5xx, status code documented, content type and body as documented."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance

CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class FuzzResult:
    operation: str
    examples: int = 0
    server_errors: int = 0
    schema_mismatches: int = 0
    statuses: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)  # a few failures, for the report

    def record(self, kind: str, message: str) -> None:
        if len(self.samples) < 5 and message not in self.samples:
            self.samples.append(f"{kind}: {message}")


def load_schema():
    from aihelper.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/", application)


def operation_labels(schema) -> list[str]:
    return sorted(result.ok().label for result in schema.get_all_operations())


@contextlib.contextmanager
def keep_the_test_connection():
    """As Django's test client does: a request must not close the connection that holds the test's
    transaction (close_old_connections would, autocommit being off inside it)."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def fuzz_operation(schema, label: str, *, examples: int, headers: dict) -> FuzzResult:
    """Run ``examples`` generated requests (derandomized: the same ones every run) and count failures."""
    operation = schema.find_operation_by_label(label)
    result = FuzzResult(operation=label)

    @hypothesis.settings(
        max_examples=examples, derandomize=True, deadline=None, database=None, print_blob=False,
        suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy())
    def run(case):
        result.examples += 1
        response = case.call(headers=headers)
        result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            result.server_errors += 1
            result.record("server error", f"{response.status_code} for {case.method} {case.formatted_path} "
                                          f"body={str(case.body)[:200]} query={case.query}")
            return
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failure is counted, the run goes on
            result.schema_mismatches += 1
            parts = getattr(exc, "exceptions", None) or [exc]
            names = ", ".join(f"{type(part).__name__}({str(part).splitlines()[0][:80]})" for part in parts)
            result.record("schema mismatch", f"{response.status_code} on {case.method} {case.formatted_path}: {names}")

    with keep_the_test_connection():
        run()
    return result
