"""runbook_search end to end on a small embedded corpus: known answers, RBAC, hostile input, limits."""

import pytest

from runbooks.calibration import STRATEGIES
from runbooks.models import ExecutionStatus, Runbook
from runbooks.search import InvalidQuery, SearchConfig, runbook_search
from runbooks.services import runbook_upsert
from tests.factories import GroupFactory
from tests.runbooks.corpus import KNOWN_ANSWERS, load_corpus
from tests.runbooks.factories import RunbookExecutionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus(django_capture_on_commit_callbacks):
    load_corpus(django_capture_on_commit_callbacks, groups_for={"t/dbreplication": ["dba"]})


@pytest.mark.parametrize(("query", "gold"), KNOWN_ANSWERS)
def test_known_answer_is_ranked_first_and_recommended(corpus, staff_user, query, gold):
    outcome = runbook_search(query=query, user=staff_user, limit=5)
    assert outcome.results[0].runbook.slug == gold
    assert outcome.results[0].recommended
    assert 0.0 <= outcome.results[-1].confidence <= outcome.results[0].confidence <= 1.0


def test_unrelated_query_recommends_nothing(corpus, staff_user):
    outcome = runbook_search(query="RabbitMQ queue has too many unacknowledged messages", user=staff_user)
    assert outcome.recommended == []
    assert outcome.strategy == "no_solutions"


def test_group_restricted_runbook_is_only_returned_to_members(corpus, user):
    query = "Replication lag on the orders database replica is 900 seconds"
    assert "t/dbreplication" not in [r.runbook.slug for r in runbook_search(query=query, user=user).results]
    user.groups.add(GroupFactory(name="dba"))
    assert runbook_search(query=query, user=user).results[0].runbook.slug == "t/dbreplication"


def test_disabled_runbooks_are_never_returned(corpus, staff_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        runbook_upsert(slug="t/podcrash", data={"enabled": False})
    outcome = runbook_search(query="Pod is crash looping", user=staff_user)
    assert "t/podcrash" not in [r.runbook.slug for r in outcome.results]


@pytest.mark.parametrize(
    "query",
    [
        "disk & | ! <-> :* full",
        "'unbalanced \"quotes",
        "back\\slash \\\\ disk",
        "🔥🔥 pod crash 💥",
        "'; DROP TABLE runbooks; --",
        "SELECT * FROM auth_user WHERE 1=1 OR ''=''",
        "&&&|||!!!",
        "\x00 nul byte",
    ],
)
def test_hostile_queries_never_raise(corpus, staff_user, query):
    outcome = runbook_search(query=query, user=staff_user)
    assert outcome.strategy in STRATEGIES


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_invalid(staff_user, query):
    with pytest.raises(InvalidQuery):
        runbook_search(query=query, user=staff_user)


def test_long_query_is_truncated_with_notice(corpus, staff_user):
    config = SearchConfig(max_query_chars=100)
    outcome = runbook_search(query="pod crash looping " * 50, user=staff_user, config=config)
    assert outcome.truncated
    assert len(outcome.query) == 100


def test_at_most_three_recommended(staff_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for index in range(5):
            runbook_upsert(
                slug=f"t/crash{index}",
                data={"name": f"PodCrashLooping{index}", "description": "A pod keeps restarting.", "tags": ["pod"]},
            )
    outcome = runbook_search(query="Pod crash looping", user=staff_user, config=SearchConfig(threshold=0.0))
    assert len(outcome.recommended) == 3


def test_user_without_group_membership_query_count(corpus, user, django_assert_max_num_queries):
    runbook_search(query="warm up: pgvector version check is cached per process", user=user)
    # HNSW settings, then one statement: the legs, the selective words, the rows, their keyword rank and runs
    with django_assert_max_num_queries(2):
        runbook_search(query="Pod is crash looping", user=user)


def test_each_result_carries_its_finished_runs_and_success_rate(corpus, staff_user):
    """The rate shown on a card and used in the confidence: finished runs only (in-progress and abandoned left
    out), read with the candidates."""
    query = "Pod is crash looping"
    top = runbook_search(query=query, user=staff_user).results[0].runbook
    for status in (ExecutionStatus.SUCCEEDED, ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED,
                   ExecutionStatus.IN_PROGRESS, ExecutionStatus.ABANDONED):
        RunbookExecutionFactory(runbook=Runbook.objects.get(pk=top.pk), status=status)
    results = {result.runbook.pk: result for result in runbook_search(query=query, user=staff_user).results}
    assert results[top.pk].success_samples == 3 and results[top.pk].success_rate == pytest.approx(2 / 3)
    assert all(result.success_samples == 0 and result.success_rate is None
               for pk, result in results.items() if pk != top.pk)


def test_the_compiled_visibility_follows_group_and_superuser_changes(corpus, user):
    """The visibility condition is compiled once per user (runbooks.search.searchable_condition); what the user
    may see still changes the moment their groups or their superuser flag do."""
    query = "Replication lag on the orders database replica is 900 seconds"

    def slugs():
        return [result.runbook.slug for result in runbook_search(query=query, user=user).results]

    assert "t/dbreplication" not in slugs()
    user.groups.add(GroupFactory(name="dba"))
    assert slugs()[0] == "t/dbreplication"
    user.groups.clear()
    assert "t/dbreplication" not in slugs()
    user.is_superuser = True
    user.save()
    assert slugs()[0] == "t/dbreplication"
    user.is_superuser = False
    user.save()
    assert "t/dbreplication" not in slugs()
