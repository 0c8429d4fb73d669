"""The checks behind ``manage.py verify_phase2``: each one asserts, each one can fail.

Checks 3-7 speak HTTP through a ``Transport``: in-process (django.test.Client, the full middleware
stack, inside a transaction that is rolled back so nothing is left behind) or against a running
server (``--base-url``: real form login with CSRF, then the JSON API; what was created is removed
afterwards through the database when it is reachable).
"""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import json
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone

from aihelper.chat.models import ChatSession
from aihelper.core.db_router import analytics_reads_on
from aihelper.core.sql import pgvector_version, server_version
from analytics.sql.common import MetricFilter
from analytics.sql.metrics import log_summary, pair_summary
from audit.models import AuditLog, RunbookInteractionEvent
from audit.selectors import audit_log_details
from audit.services.store import audit_logs_purge
from runbooks.models import Runbook
from runbooks.selectors import embedding_status

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class CheckFailed(Exception):
    """The check ran and its subject is broken; the message says what was wrong."""


@dataclass
class CheckResult:
    number: int
    name: str
    ok: bool
    detail: str
    ms: float


@dataclass
class Response:
    status: int
    text: str
    url: str

    def json(self) -> dict:
        try:
            return json.loads(self.text)
        except ValueError:
            raise CheckFailed(f"expected JSON from {self.url}, got HTTP {self.status}: {self.text[:120]!r}") from None


class InProcessTransport:
    def __init__(self) -> None:

        host = next((h for h in settings.ALLOWED_HOSTS if h not in ("*", "") and not h.startswith(".")), "localhost")
        self.client = Client(enforce_csrf_checks=True, SERVER_NAME=host)
        self.secure = bool(getattr(settings, "SECURE_SSL_REDIRECT", False))
        self.label = "in-process"

    def get(self, path: str) -> Response:
        response = self.client.get(path, secure=self.secure)
        return Response(response.status_code, response.content.decode(errors="replace"), path)

    def post_form(self, path: str, data: dict) -> Response:
        response = self.client.post(path, data, secure=self.secure)
        return Response(response.status_code, response.content.decode(errors="replace"), path)

    def post_json(self, path: str, body: dict) -> Response:
        token = self.client.cookies.get(settings.CSRF_COOKIE_NAME)
        headers = {"HTTP_X_CSRFTOKEN": token.value} if token else {}
        response = self.client.post(
            path, data=json.dumps(body), content_type="application/json", secure=self.secure, **headers
        )
        return Response(response.status_code, response.content.decode(errors="replace"), path)


class HttpTransport:
    """A browser-like client for a running deployment: cookie jar, CSRF header, no redirects followed."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), self._NoRedirect())
        self.timeout = timeout
        self.label = self.base_url

    def _csrf(self) -> str | None:
        return next((c.value for c in self.jar if c.name == settings.CSRF_COOKIE_NAME), None)

    def _send(self, path: str, data: bytes | None, headers: dict) -> Response:
        url = self.base_url + path
        request = urllib.request.Request(url, data=data, headers={"Referer": url, **headers})  # noqa: S310 - http(s) only, checked by the command
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                return Response(response.status, response.read().decode(errors="replace"), url)
        except urllib.error.HTTPError as exc:
            return Response(exc.code, exc.read().decode(errors="replace"), url)
        except (urllib.error.URLError, TimeoutError) as exc:
            raise CheckFailed(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None

    def get(self, path: str) -> Response:
        return self._send(path, None, {})

    def post_form(self, path: str, data: dict) -> Response:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self._csrf():
            headers["X-CSRFToken"] = self._csrf()
        return self._send(path, urllib.parse.urlencode(data).encode(), headers)

    def post_json(self, path: str, body: dict) -> Response:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._csrf():
            headers["X-CSRFToken"] = self._csrf()
        return self._send(path, json.dumps(body).encode(), headers)


@dataclass
class VerifyState:
    username: str = ""
    password: str = ""
    query: str = ""
    expected_slug: str = ""
    audit_log_id: str = ""
    session_id: str = ""
    solution: dict = field(default_factory=dict)
    started_at: float = 0.0
    created_audit_logs: list[str] = field(default_factory=list)
    analytics_before: tuple[int, int] | None = None
    created_user_id: int | None = None


def _login(transport, username: str, password: str) -> Response:
    page = transport.get("/accounts/login/")
    if page.status != 200:
        raise CheckFailed(f"login page answered HTTP {page.status}")
    match = CSRF_INPUT.search(page.text)
    if not match:
        raise CheckFailed("login page has no CSRF token")
    return transport.post_form(
        "/accounts/login/", {"csrfmiddlewaretoken": match.group(1), "username": username, "password": password}
    )


class Verifier:
    def __init__(self, *, transport, username: str | None, password: str | None, query: str | None) -> None:
        self.transport = transport
        self.state = VerifyState(query=query or "")
        self.given_credentials = (username, password) if username else None
        self.results: list[CheckResult] = []
        self.in_transaction = isinstance(transport, InProcessTransport)

    # -- checks -------------------------------------------------------------------------
    def check_database(self) -> str:
        server, vector = server_version(), pgvector_version()
        if vector is None:
            raise CheckFailed(f"PostgreSQL {server} is reachable but the vector extension is not installed")
        plan = MigrationExecutor(connection).migration_plan(MigrationExecutor(connection).loader.graph.leaf_nodes())
        if plan:
            pending = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in plan[:5])
            raise CheckFailed(f"{len(plan)} migrations not applied ({pending}); run manage.py migrate")
        return f"PostgreSQL {server}, pgvector {vector}, migrations applied"

    def check_embeddings(self) -> str:

        runbooks = list(Runbook.objects.filter(enabled=True).order_by("slug"))
        if not runbooks:
            raise CheckFailed("no enabled runbooks: import some (manage.py import_runbooks or seed_demo)")
        bad = [(runbook.slug, embedding_status(runbook)) for runbook in runbooks]
        bad = [(slug, status) for slug, status in bad if status != "current"]
        if bad:
            listed = ", ".join(f"{slug} ({status})" for slug, status in bad[:8])
            more = f" and {len(bad) - 8} more" if len(bad) > 8 else ""
            raise CheckFailed(f"{len(bad)} of {len(runbooks)} enabled runbooks lack a current embedding: "
                              f"{listed}{more}; run manage.py generate_embeddings")
        return f"{len(runbooks)} enabled runbooks embedded with the current model"

    def check_login(self) -> str:
        state = self.state
        if self.given_credentials:
            state.username, state.password = self.given_credentials
        else:
            user_model = get_user_model()
            state.username = f"verify-{uuid.uuid4().hex[:10]}"
            state.password = secrets.token_urlsafe(18)
            user = user_model.objects.create_user(username=state.username, password=state.password)
            state.created_user_id = user.pk
        wrong = _login(self.transport, state.username, state.password + "-wrong")
        if wrong.status != 200 or "didn't match" not in wrong.text:
            raise CheckFailed(f"a wrong password was not refused (HTTP {wrong.status})")
        right = _login(self.transport, state.username, state.password)
        if right.status != 302:
            raise CheckFailed(f"login as {state.username} failed (HTTP {right.status}, expected a redirect)")
        return f"{state.username} logged in; wrong password refused"

    def _pick_query(self) -> None:
        if self.state.query:
            return

        runbook = (
            Runbook.objects.filter(enabled=True, allowed_groups__isnull=True, embedding__isnull=False)
            .exclude(description="")
            .order_by("slug")
            .first()
        )
        if runbook is None:
            raise CheckFailed("no unrestricted, embedded runbook to build a known query from; pass --query")
        self.state.query = f"{runbook.name}: {runbook.description}"
        self.state.expected_slug = runbook.slug

    def check_search(self) -> str:
        self._pick_query()
        response = self.transport.post_json("/api/ai-helper/query", {"message": self.state.query})
        if response.status != 200:
            raise CheckFailed(f"query API answered HTTP {response.status}: {response.text[:200]}")
        body = response.json()
        # Remember what was created before judging it, so cleanup finds it even when the check fails.
        if body.get("audit_log_id"):
            self.state.created_audit_logs.append(body["audit_log_id"])
        solutions = body.get("solutions") or []
        if not solutions:
            raise CheckFailed(f"nothing recommended for {self.state.query[:60]!r} (strategy "
                              f"{body.get('presentation_strategy')})")
        if self.state.expected_slug and solutions[0].get("slug") != self.state.expected_slug:
            raise CheckFailed(f"expected {self.state.expected_slug} at rank 1, got {solutions[0].get('slug')}")
        self.state.audit_log_id = body.get("audit_log_id", "")
        self.state.session_id = body.get("session_id", "")
        self.state.solution = solutions[0]
        return f"{solutions[0]['slug']} recommended at rank 1 (confidence {solutions[0]['confidence']:.2f})"

    def check_chat(self) -> str:
        if not self.state.audit_log_id:
            raise CheckFailed("no answer to inspect (the search check failed)")
        try:
            audit_log = AuditLog.objects.get(pk=self.state.audit_log_id)
        except (AuditLog.DoesNotExist, DatabaseError, ValueError):
            raise CheckFailed(f"audit log {self.state.audit_log_id} not found in the database") from None
        try:
            details = audit_log_details(audit_log)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckFailed(f"ai_action_details cannot be read: {exc!r}") from None
        presented = details.solutions
        ranks = [solution.rank for solution in presented]
        if not presented or ranks != list(range(1, len(presented) + 1)):
            raise CheckFailed(f"solutions_presented ranks are {ranks}, expected 1..n")
        if not details.presentation_strategy:
            raise CheckFailed("audit log has no presentation_strategy")
        events = RunbookInteractionEvent.objects.filter(audit_log_id=audit_log.pk, event_type="presented").count()
        runbooks = len(details.runbook_solutions)
        if events != runbooks:
            raise CheckFailed(f"{events} presented events for {runbooks} presented runbooks")
        self.state.analytics_before = self._analytics_counts()
        return f"audit log with {len(presented)} ranked solutions, {details.presentation_strategy}, {events} events"

    def _analytics_counts(self) -> tuple[int, int]:
        """(recommended answers with a click, clicked presentations of the runbook) in the verification window."""
        audit_log = AuditLog.objects.select_related("user").get(pk=self.state.audit_log_id)
        filters = MetricFilter(
            start=audit_log.created_at - dt.timedelta(seconds=1),
            end=timezone.now() + dt.timedelta(minutes=1),
            visible_runbook_ids=(self.state.solution["id"],),
        )
        # In-process runs live in one uncommitted transaction on "default": a replica cannot see them.
        with analytics_reads_on("default") if self.in_transaction else nullcontext():
            runbook_clicks = sum(
                row.clicks
                for row in pair_summary(filters, limit=1000).top_runbooks
                if str(row.runbook_id) == self.state.solution["id"]
            )
            return log_summary(filters, now=timezone.now()).rates.clicked, runbook_clicks

    def _click(self, body: dict) -> dict:
        response = self.transport.post_json("/api/ai-helper/track-choice", body)
        if response.status != 201:
            raise CheckFailed(f"track-choice answered HTTP {response.status}: {response.text[:200]}")
        return response.json()

    def check_tracking(self) -> str:

        solution = self.state.solution
        if not solution:
            raise CheckFailed("no presented solution to click (the search check failed)")
        choice = {
            "solution_chosen_id": solution["id"],
            "solution_chosen_type": solution.get("type", "runbook"),
            "user_action": "clicked_link",
        }
        first = self._click({"audit_log_id": self.state.audit_log_id, "choice_data": choice})
        second = self._click({"session_id": self.state.session_id, "choice_data": choice})
        if second.get("audit_log_id") != self.state.audit_log_id:
            raise CheckFailed("session mode resolved a different audit log")
        if (first.get("click_count"), second.get("click_count")) != (1, 2):
            raise CheckFailed(f"click counts {first.get('click_count')}, {second.get('click_count')}: expected 1, 2")
        clicks = AuditLog.objects.get(pk=self.state.audit_log_id).user_modifications.get("clicks", [])
        if [click.get("event_id") for click in clicks] != [first["event_id"], second["event_id"]]:
            raise CheckFailed("the second click overwrote the first")
        events = RunbookInteractionEvent.objects.filter(
            audit_log_id=self.state.audit_log_id, event_type="clicked_link"
        ).count()
        if events != 2:
            raise CheckFailed(f"{events} clicked_link events, expected 2")
        return "by audit_log_id and by session_id: 2 clicks appended, 2 events"

    def check_analytics(self) -> str:
        if self.state.analytics_before is None:
            raise CheckFailed("no analytics baseline (an earlier check failed)")
        clicked_before, runbook_clicks_before = self.state.analytics_before
        clicked_after, runbook_clicks_after = self._analytics_counts()
        if clicked_after != clicked_before + 1:
            raise CheckFailed(f"click-through numerator went {clicked_before} -> {clicked_after}, expected +1")
        # top_runbooks counts clicked presentations: two clicks on one answer are one.
        if runbook_clicks_after != runbook_clicks_before + 1:
            raise CheckFailed(
                f"top_runbooks clicks for {self.state.solution['slug']} went {runbook_clicks_before} -> "
                f"{runbook_clicks_after}, expected +1"
            )
        return f"click_through_rate and top_runbooks count the click on {self.state.solution['slug']}"

    # -- running --------------------------------------------------------------------------
    CHECKS: tuple[tuple[str, str], ...] = (
        ("database", "check_database"),
        ("embeddings", "check_embeddings"),
        ("login", "check_login"),
        ("search", "check_search"),
        ("chat", "check_chat"),
        ("tracking", "check_tracking"),
        ("analytics", "check_analytics"),
    )

    def run(self, on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
        self.state.started_at = time.time()
        for number, (name, method) in enumerate(self.CHECKS, start=1):
            started = time.perf_counter()
            try:
                detail, ok = getattr(self, method)(), True
            except CheckFailed as exc:
                detail, ok = str(exc), False
            except Exception as exc:  # noqa: BLE001 - any crash is a failed check, reported, not a traceback
                detail, ok = f"{exc.__class__.__name__}: {exc}", False
                if connection.in_atomic_block and connection.needs_rollback:
                    connection.needs_rollback = False
            result = CheckResult(number, name, ok, detail, round((time.perf_counter() - started) * 1000, 1))
            self.results.append(result)
            if on_result:
                on_result(result)
        return self.results

    def cleanup(self) -> None:
        """Remove what an HTTP run created (in-process runs are rolled back instead)."""

        ids = [audit_id for audit_id in self.state.created_audit_logs if audit_id]
        if self.state.created_user_id:
            # Everything the temporary user produced, whichever check stopped the run.
            own = AuditLog.objects.filter(user_id=self.state.created_user_id).values_list("pk", flat=True)
            ids += [str(pk) for pk in own]
        ids = list(dict.fromkeys(ids))
        with transaction.atomic():
            audit_logs_purge(audit_log_ids=ids)
            if self.state.session_id:
                ChatSession.objects.filter(pk=self.state.session_id).delete()
            if self.state.created_user_id:
                ChatSession.objects.filter(user_id=self.state.created_user_id).delete()
            if self.state.created_user_id:
                get_user_model().objects.filter(pk=self.state.created_user_id).delete()


def verify(*, base_url: str | None, username: str | None, password: str | None, query: str | None,
           on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    if base_url:
        verifier = Verifier(transport=HttpTransport(base_url), username=username, password=password, query=query)
        try:
            return verifier.run(on_result)
        finally:
            verifier.cleanup()
    verifier = Verifier(transport=InProcessTransport(), username=username, password=password, query=query)
    with transaction.atomic():
        results = verifier.run(on_result)
        transaction.set_rollback(True)
    return results
