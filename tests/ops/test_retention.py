"""manage.py apply_retention: old words are blanked, every count, rank and click stays, recent text stays."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from aihelper.chat.models import ChatMessage, ChatSession
from aihelper.chat.services.orchestrator import chat_answer
from aihelper.core.redaction import RETENTION_MARKER
from analytics.sql.common import metric_filter
from analytics.sql.metrics import log_summary, pair_summary
from audit.models import AuditLog
from audit.services.tracking import answer_feedback_record, click_record
from runbooks.executions import execution_finish, execution_start
from runbooks.models import RunbookExecution

pytestmark = pytest.mark.django_db

LONG_AGO = timezone.now() - dt.timedelta(days=120)


def _answer(user, message):
    answer = chat_answer(user=user, message=message)
    click_record(user=user, audit_log_id=answer.audit_log.pk, solution_id=answer.solutions[0].id,
                 solution_type="runbook", user_action="clicked_link")
    answer_feedback_record(user=user, audit_log_id=answer.audit_log.pk, rating="up", comment="restarting fixed it")
    return answer


def _age(answer, when):
    AuditLog.objects.filter(pk=answer.audit_log.pk).update(created_at=when)
    ChatMessage.objects.filter(session=answer.session).update(created_at=when)
    ChatSession.objects.filter(pk=answer.session.pk).update(updated_at=when)


def _metrics(user):
    filters = metric_filter(start=LONG_AGO - dt.timedelta(days=1), end=timezone.now() + dt.timedelta(minutes=1))
    summary = log_summary(filters, now=timezone.now())
    return summary.rates, pair_summary(filters).top_runbooks


def test_old_text_is_blanked_and_the_metrics_do_not_change(user, library, recommend_all, offline):
    old = _answer(user, "node disk is full on worker-3")
    recent = _answer(user, "postgres replication lag on the replica")
    _age(old, LONG_AGO)
    runbook = library["test/node-disk-full"]
    execution = execution_start(user=user, runbook=runbook)
    execution_finish(user=user, execution_id=execution.pk, succeeded=True, notes="ran df -h, cleaned /var/log")
    RunbookExecution.objects.filter(pk=execution.pk).update(started_at=LONG_AGO)
    before = _metrics(user)

    out = StringIO()
    call_command("apply_retention", stdout=out)

    log = AuditLog.objects.get(pk=old.audit_log.pk)
    assert (log.query, log.response) == (RETENTION_MARKER, RETENTION_MARKER)
    assert log.user_modifications["feedback"][0]["comment"] == RETENTION_MARKER
    assert log.user_modifications["feedback"][0]["rating"] == "up"
    assert len(log.user_modifications["clicks"]) == 1
    assert log.ai_action_details["solutions_presented"] == old.audit_log.ai_action_details["solutions_presented"]
    assert set(ChatMessage.objects.filter(session=old.session).values_list("content", flat=True)) == {RETENTION_MARKER}
    assert ChatSession.objects.get(pk=old.session.pk).title == RETENTION_MARKER
    assert RunbookExecution.objects.get(pk=execution.pk).notes == RETENTION_MARKER

    kept = AuditLog.objects.get(pk=recent.audit_log.pk)
    assert kept.query == "postgres replication lag on the replica"
    assert kept.user_modifications["feedback"][0]["comment"] == "restarting fixed it"
    assert ChatSession.objects.get(pk=recent.session.pk).title == "postgres replication lag on the replica"

    assert _metrics(user) == before
    assert "chat messages: 2" in out.getvalue() and "execution notes: 1" in out.getvalue()

    again = StringIO()
    call_command("apply_retention", stdout=again)
    assert all(line.endswith(": 0") for line in again.getvalue().splitlines()[1:]), again.getvalue()


def test_the_period_comes_from_the_setting_or_the_option(user, library, recommend_all, offline, settings):
    answer = _answer(user, "node disk is full")
    _age(answer, timezone.now() - dt.timedelta(days=10))
    settings.MESSAGE_RETENTION_DAYS = 30
    call_command("apply_retention", stdout=StringIO())
    assert AuditLog.objects.get(pk=answer.audit_log.pk).query == "node disk is full"
    call_command("apply_retention", "--older-than-days", "7", stdout=StringIO())
    assert AuditLog.objects.get(pk=answer.audit_log.pk).query == RETENTION_MARKER
    for days in ("0", "999999999"):  # the second would overflow a date (was a traceback)
        with pytest.raises(CommandError, match="between 1 and 36500"):
            call_command("apply_retention", "--older-than-days", days, stdout=StringIO())
