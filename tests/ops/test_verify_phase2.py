"""verify_phase2 really verifies: it passes on a healthy system and fails (exit 1) when a subject breaks."""

import json

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import path

from aihelper.chat.models import ChatSession
from audit.models import AuditLog, RunbookInteractionEvent
from runbooks.models import Runbook
from runbooks.services import runbook_upsert

pytestmark = pytest.mark.django_db

CORPUS = [
    ("verify/disk-full", "HostDiskFull", "A filesystem on the host is almost full and writes will fail.",
     ["disk", "filesystem"], "Find the biggest directories", "du -xh / | sort -h | tail"),
    ("verify/pod-crash", "PodCrashLooping", "A pod restarts repeatedly because its container keeps exiting.",
     ["kubernetes", "pod"], "Read the previous container logs", "kubectl logs --previous $POD"),
    ("verify/cert-expiry", "CertificateExpiringSoon", "A TLS certificate expires within days.",
     ["tls", "certificate"], "Check the expiry date", "openssl x509 -enddate -noout -in cert.pem"),
]


@pytest.fixture
def corpus(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for slug, name, description, tags, step, command in CORPUS:
            runbook_upsert(
                slug=slug,
                data={"name": name, "description": description, "tags": tags,
                      "steps": [{"title": step, "detail": "", "command": command}]},
            )


def _run(capsys, *args):
    with pytest.raises(SystemExit) as excinfo:
        call_command("verify_phase2", "--json", *args)
        raise SystemExit(0)
    report = json.loads(capsys.readouterr().out)
    return excinfo.value.code, {check["name"]: check for check in report["checks"]}


def test_all_checks_pass_and_nothing_is_left_behind(corpus, capsys):
    before = (User.objects.count(), AuditLog.objects.count(), ChatSession.objects.count(),
              RunbookInteractionEvent.objects.count())
    code, checks = _run(capsys)
    assert code == 0, {name: check["detail"] for name, check in checks.items() if not check["ok"]}
    assert list(checks) == ["database", "embeddings", "login", "search", "chat", "tracking", "analytics"]
    assert all(check["ok"] for check in checks.values())
    after = (User.objects.count(), AuditLog.objects.count(), ChatSession.objects.count(),
             RunbookInteractionEvent.objects.count())
    assert after == before


def test_a_runbook_without_embedding_fails_the_coverage_check(corpus, capsys):
    Runbook.objects.filter(slug="verify/pod-crash").update(embedding=None, embedding_hash="")
    code, checks = _run(capsys)
    assert code == 1
    assert checks["embeddings"]["ok"] is False
    assert "verify/pod-crash (missing)" in checks["embeddings"]["detail"]
    assert "generate_embeddings" in checks["embeddings"]["detail"]


def test_a_wrong_password_fails_the_login_check(corpus, capsys, user):
    code, checks = _run(capsys, "--username", user.username, "--password", "not-the-password")
    assert code == 1
    assert checks["login"]["ok"] is False
    assert "login as alice failed" in checks["login"]["detail"]


def test_a_query_nothing_matches_fails_the_search_check(corpus, capsys):
    code, checks = _run(capsys, "--query", "quarterly marketing budget spreadsheet review")
    assert code == 1
    assert checks["search"]["ok"] is False
    assert "nothing recommended" in checks["search"]["detail"]
    assert checks["tracking"]["ok"] is False


def _broken_tracking(request):
    from django.http import JsonResponse

    return JsonResponse({"error": "boom"}, status=500)



def test_a_tracking_endpoint_returning_an_error_fails_the_tracking_check(corpus, capsys, settings):
    import aihelper.urls

    settings.ROOT_URLCONF = __name__
    global urlpatterns
    urlpatterns = [path("api/ai-helper/track-choice", _broken_tracking), *aihelper.urls.urlpatterns]
    code, checks = _run(capsys)
    assert code == 1
    assert checks["tracking"]["ok"] is False
    assert "HTTP 500" in checks["tracking"]["detail"]


def test_no_runbooks_fails_clearly(capsys):
    code, checks = _run(capsys)
    assert code == 1
    assert "no enabled runbooks" in checks["embeddings"]["detail"]


@pytest.mark.django_db(transaction=True)
def test_http_mode_against_a_live_server(corpus, live_server, capsys):
    before = AuditLog.objects.count()
    code, checks = _run(capsys, "--base-url", live_server.url)
    assert code == 0, {name: check["detail"] for name, check in checks.items() if not check["ok"]}
    assert AuditLog.objects.count() == before
    assert not User.objects.filter(username__startswith="verify-").exists()


def test_http_mode_with_an_unreachable_server_fails(corpus, capsys):
    code, checks = _run(capsys, "--base-url", "http://127.0.0.1:9")
    assert code == 1
    assert "cannot reach" in checks["login"]["detail"]


def test_lost_click_events_fail_tracking_and_analytics(corpus, capsys):
    from django.db import connection

    with connection.cursor() as cursor:
        # Simulate an event store that silently loses clicks.
        cursor.execute(
            "CREATE FUNCTION lose_clicks() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.event_type = 'clicked_link' THEN RETURN NULL; END IF; RETURN NEW; END $$;"
            " CREATE TRIGGER lose_clicks BEFORE INSERT ON runbook_interaction_events"
            " FOR EACH ROW EXECUTE FUNCTION lose_clicks();"
        )
    code, checks = _run(capsys)
    assert code == 1
    assert checks["tracking"]["ok"] is False and "0 clicked_link events" in checks["tracking"]["detail"]
    assert checks["analytics"]["ok"] is False
