"""What one reader sees of an alert's stored ranking (alerts/presenting.py): filtered to the runbooks they may
see, re-ranked 1..n, the strategy under their experiment variant, and the one audited presentation per
(user, alert), race-safe."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.db import connection

from alerts import presenting
from alerts.models import Alert, AlertPresentation, RecommendationEvidence
from alerts.presenting import (
    alert_view,
    alerts_page_build,
    duration_words,
    http_link,
    viewer_ranking,
    viewer_rules,
)
from alerts.selectors import alerts_firing
from analytics.models import Experiment
from audit.details import ActionDetails
from audit.models import AuditLog, RunbookInteractionEvent
from runbooks.models import RunbookStatus
from tests.alerts.page_rows import page_alert, rank_runbooks
from tests.factories import GroupFactory, UserFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db


def _loaded(alert: Alert, user) -> Alert:
    return alerts_firing(user=user).get(pk=alert.pk)


@pytest.fixture
def ranked(user):
    """A ranking of four runbooks whose first is restricted to a group ``user`` is not in, and whose third is
    retired: ``user`` sees the second and fourth, as ranks 1 and 2."""
    secret = RunbookFactory(name="SecretRunbook", allowed_groups=[GroupFactory(name="dba")])
    first = RunbookFactory(name="PodCrashLooping")
    retired = RunbookFactory(name="OldRunbook", status=RunbookStatus.RETIRED)
    second = RunbookFactory(name="PodOOMKilled", is_automated=True)
    alert = page_alert()
    rank_runbooks(alert, (secret, 0.99, RecommendationEvidence.LINKED), (first, 0.9), (retired, 0.85), (second, 0.6))
    return {"alert": alert, "secret": secret, "first": first, "second": second}


def test_ranking_is_filtered_to_the_visible_runbooks_and_re_ranked(user, ranked):
    ranking = viewer_ranking(alert=_loaded(ranked["alert"], user), rules=viewer_rules(user=user), user=user)
    assert [(card.rank, card.title) for card in ranking.cards] == [(1, "PodCrashLooping"), (2, "PodOOMKilled")]
    assert [card.recommended for card in ranking.cards] == [True, True]
    # 0.9 - 0.6 >= primary_gap: one clear match and an alternative.
    assert ranking.strategy == "primary_plus_one"
    assert ranking.cards[0].confidence_words == "High" and ranking.cards[1].confidence_words == "Medium"
    # The automated runbook needs staff or an allowed group to run; the plain one anyone may run.
    assert [card.can_execute for card in ranking.cards] == [True, False]


def test_a_reader_who_may_see_everything_gets_the_linked_runbook_first(staff_user, ranked):
    ranking = viewer_ranking(
        alert=_loaded(ranked["alert"], staff_user), rules=viewer_rules(user=staff_user), user=staff_user
    )
    assert [card.title for card in ranking.cards] == ["SecretRunbook", "PodCrashLooping", "PodOOMKilled"]
    assert ranking.cards[0].why == "Linked by the alert rule"
    assert ranking.cards[1].why == "Search: similar in meaning (80%)"
    # Rank 4 of the catalogue is rank 3 for this reader: still within max_recommended.
    assert [card.recommended for card in ranking.cards] == [True, True, True]
    assert ranking.strategy == "multiple_options"


def test_the_readers_experiment_variant_sets_the_threshold(user, ranked):
    Experiment.objects.create(
        key="strict", variants=[{"key": "strict", "weight": 1, "overrides": {"threshold": 0.7}}]
    )
    rules = viewer_rules(user=user)
    assert (rules.experiment, rules.variant, rules.config.threshold) == ("strict", "strict", 0.7)
    ranking = viewer_ranking(alert=_loaded(ranked["alert"], user), rules=rules, user=user)
    assert [card.recommended for card in ranking.cards] == [True, False]
    assert ranking.strategy == "single_solution"


def test_no_confident_runbook_is_no_solutions(user):
    alert = page_alert()
    rank_runbooks(alert, (RunbookFactory(), 0.2), (RunbookFactory(), 0.1))
    ranking = viewer_ranking(alert=_loaded(alert, user), rules=viewer_rules(user=user), user=user)
    assert ranking.recommended == () and len(ranking.cards) == 2
    assert ranking.strategy == "no_solutions"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(-5, "0 s"), (45, "45 s"), (720, "12 min"), (3600, "1 h"), (7500, "2 h 5 min"), (86400 * 2 + 3600 * 7, "2 d 7 h")],
)
def test_durations_read_like_people_say_them(seconds, words):
    assert duration_words(seconds) == words


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("https://prometheus.example/graph?g0.expr=up", "https://prometheus.example/graph?g0.expr=up"),
        ("HTTP://grafana.example/d/1", "HTTP://grafana.example/d/1"),
        ("javascript:alert(1)", ""),
        ("data:text/html,<script>alert(1)</script>", ""),
        ("//evil.example/x", ""),
        ("/relative", ""),
        ("http://[bad", ""),
        (None, ""),
        ("", ""),
    ],
)
def test_only_http_links_are_clickable(url, link):
    assert http_link(url) == link


def test_presentation_is_audited_once_with_the_readers_ranks(user, ranked):
    alert = ranked["alert"]
    page = alerts_page_build(user=user)
    view = page.firing[0].alerts[0]
    log = AuditLog.objects.get()
    assert view.audit_log_id == log.pk
    assert log.source == "alert" and log.query == alert.recommendation_query and log.session is None
    details = ActionDetails.from_json(log.ai_action_details)
    assert [(s.rank, s.id) for s in details.solutions] == [(1, str(ranked["first"].pk)), (2, str(ranked["second"].pk))]
    assert details.presentation_strategy == "primary_plus_one"
    assert details.threshold == settings.AIHELPER_CONFIDENCE_THRESHOLD
    assert details.page_context["alert_id"] == alert.pk
    assert details.page_context["alert_starts_at"] == alert.starts_at.isoformat()
    events = RunbookInteractionEvent.objects.filter(audit_log=log, event_type="presented").order_by("rank")
    assert [(e.rank, e.source) for e in events] == [(1, "alert"), (2, "alert")]
    presentation = AlertPresentation.objects.get()
    assert (presentation.alert_id, presentation.user_id, presentation.audit_log_id) == (alert.pk, user.pk, log.pk)

    # Seen again: the same audit log, no second one.
    again = alerts_page_build(user=user).firing[0].alerts[0]
    assert again.audit_log_id == log.pk and AuditLog.objects.count() == 1
    # Another reader gets their own presentation.
    alerts_page_build(user=UserFactory(username="bob"))
    assert AuditLog.objects.count() == 2 and AlertPresentation.objects.count() == 2


def test_audited_cards_keep_their_ranks_when_the_ranking_changes(user, ranked):
    alerts_page_build(user=user)
    # A runbook the reader saw at rank 2 becomes invisible to them: the card goes, rank 1 stays rank 1.
    ranked["second"].allowed_groups.add(GroupFactory(name="dba"))
    view = alerts_page_build(user=user).firing[0].alerts[0]
    assert [(card.rank, card.title) for card in view.cards] == [(1, "PodCrashLooping")]
    assert AuditLog.objects.count() == 1


def test_pending_failed_and_invisible_rankings_are_not_audited(user):
    page_alert(state="pending")
    page_alert(state="failed")
    hidden = page_alert()
    rank_runbooks(hidden, (RunbookFactory(allowed_groups=[GroupFactory(name="dba")]), 0.9))
    page = alerts_page_build(user=user)
    assert {view.state for group in page.firing for view in group.alerts} == {"pending", "failed", "done"}
    assert AuditLog.objects.count() == 0 and AlertPresentation.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_views_write_one_audit_log(monkeypatch):
    """Two page loads of one alert at once: both write an audit log before either inserts its presentation;
    the unique (alert, user) lets one win, the other's savepoint rolls its audit log back."""
    user = UserFactory(username="carol")
    alert = page_alert()
    rank_runbooks(alert, (RunbookFactory(name="PodCrashLooping"), 0.9))
    barrier = threading.Barrier(2, timeout=20)
    real_create = presenting.audit_log_create

    def create_then_wait(**kwargs):
        audit_log = real_create(**kwargs)
        barrier.wait()
        return audit_log

    monkeypatch.setattr(presenting, "audit_log_create", create_then_wait)
    results, errors = [], []

    def load():
        try:
            loaded = _loaded(alert, user)
            rules = viewer_rules(user=user)
            view = alert_view(alert=loaded, ranking=viewer_ranking(alert=loaded, rules=rules, user=user),
                              now=loaded.starts_at)
            results.append(presenting.alert_presentation_record(user=user, alert=loaded, view=view, rules=rules))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(results) == 2 and results[0].pk == results[1].pk
    assert AlertPresentation.objects.count() == 1 and AuditLog.objects.count() == 1
    assert RunbookInteractionEvent.objects.filter(event_type="presented").count() == 1
