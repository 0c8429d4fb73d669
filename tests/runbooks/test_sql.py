"""Each statement of runbooks/sql.py on data whose answer is known."""

import pytest
from django.contrib.postgres.search import SearchQuery
from django.db import connection, transaction

from runbooks import sql
from runbooks.models import ExecutionStatus, Runbook, RunbookStatus
from runbooks.search import runbook_search, searchable_runbooks
from runbooks.selectors import operator_reader, visible_runbooks
from runbooks.sql import (
    TitleVector,
    candidate_rows,
    hnsw_scan_set_local,
    pgvector_has_iterative_scan,
    queryset_condition,
    selective_words,
    success_counts,
)
from tests.factories import GroupFactory, UserFactory
from tests.runbooks.factories import RunbookExecutionFactory, RunbookFactory

pytestmark = pytest.mark.django_db


def _scalar(statement: str):
    with connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchone()[0]


def _reltuples() -> float:
    return _scalar("SELECT reltuples FROM pg_class WHERE oid = 'runbooks'::regclass")


def _analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runbooks")


@pytest.fixture
def own_statistics():
    """``ANALYZE runbooks`` that leaves no trace for later tests; returns the function that runs it.

    ANALYZE writes pg_class.reltuples in place, which a rollback does not undo (it once made term pruning
    drop every word in later tests). TRUNCATE in a savepoint gives runbooks a new pg_class row version:
    the in-place write lands on it and goes with the savepoint. The table also starts empty.
    """
    before = _reltuples()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE runbooks CASCADE")
        yield _analyze
        transaction.set_rollback(True)
    assert _reltuples() == before


# --- selective_words ------------------------------------------------------------------------------


def test_term_pruning_drops_stop_words_and_words_common_in_titles(own_statistics):
    for index in range(6):
        RunbookFactory(name=f"KubeThing{index}", tags=["kubernetes"])
    RunbookFactory(name="PodCrashLooping", tags=["kubernetes"])
    own_statistics()
    words = ["the", "kubernetes", "crash", "is"]
    assert selective_words(words, max_matches=1000) == ["kubernetes", "crash"]
    assert selective_words(words, max_matches=3) == ["crash"]


def test_a_common_word_is_dropped_per_column(own_statistics):
    # "disk" is in all 10 descriptions but in one title; "clock" is in one runbook only.
    for index in range(9):
        RunbookFactory(name=f"Thing{index}", description="The disk is full.", tags=[], steps=[])
    RunbookFactory(name="NodeDiskClockSkew", description="The disk clock drifts.", tags=[], steps=[])
    own_statistics()
    assert selective_words(["disk", "clock"], column="search_title", max_matches=5) == ["disk", "clock"]
    assert selective_words(["disk", "clock"], column="search_vector", max_matches=5) == ["clock"]


def test_the_candidates_statement_matches_on_the_same_selective_words(own_statistics):
    """The keyword legs pick their words inside the statement by selective_words' rule: a word common in titles
    finds nothing by itself, a rare one still finds its runbook, and ranks are those of the words kept."""
    for index in range(6):
        RunbookFactory(name=f"KubeThing{index}", tags=["kubernetes"])
    crash = RunbookFactory(name="PodCrashLooping", tags=["kubernetes"])
    own_statistics()

    def title_leg(words, max_matches):
        with transaction.atomic():
            rows = candidate_rows(condition=queryset_condition(Runbook.objects.all()), vector=None, title_words=words,
                                  document_words=[], all_words=[], limit=30, extra_ids=[],
                                  max_term_matches=max_matches)
        return {row.pk: row.title_rank for row in rows}

    everything = title_leg(["the", "kubernetes", "crash", "is"], 1000)
    assert len(everything) == 7 and max(everything, key=everything.get) == crash.pk
    kept = title_leg(["the", "kubernetes", "crash", "is"], 3)
    assert set(kept) == {crash.pk}
    assert kept[crash.pk] == pytest.approx(title_leg(["crash"], 1000)[crash.pk])  # ranked on "crash" alone
    assert title_leg(["kubernetes"], 3) == {}  # nothing selective: the leg finds nothing
    assert title_leg(["the", "is"], 1000) == {}  # stop words only


def test_without_statistics_only_stop_words_are_dropped(own_statistics):
    # TRUNCATE resets reltuples to "unknown": no lexeme counts as common, whatever pg_stats still holds.
    assert _reltuples() < 0
    RunbookFactory(name="KubernetesCrash", tags=["kubernetes"])
    assert selective_words(["the", "kubernetes", "crash", "is"], max_matches=0) == ["kubernetes", "crash"]
    assert selective_words([]) == []


# --- pgvector_has_iterative_scan ------------------------------------------------------------------


def test_iterative_scan_support_is_detected_from_the_installed_pgvector(django_assert_num_queries):
    version = _scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    expected = tuple(int(part) for part in version.split(".")[:2]) >= (0, 8)  # True on the embedded 0.8.x
    pgvector_has_iterative_scan.cache_clear()
    with django_assert_num_queries(1):
        assert pgvector_has_iterative_scan("default") is expected
    with django_assert_num_queries(0):  # cached per process
        assert pgvector_has_iterative_scan("default") is expected


# --- hnsw_scan_set_local --------------------------------------------------------------------------


def _hnsw_settings() -> tuple[str, str]:
    return _scalar("SHOW hnsw.ef_search"), _scalar("SHOW hnsw.iterative_scan")


@pytest.fixture
def vector_loaded():
    """The hnsw.* settings exist once the pgvector library is loaded in the session."""
    _scalar("SELECT '[1,2]'::vector")


@pytest.mark.django_db(transaction=True)
def test_hnsw_settings_hold_only_inside_the_transaction(vector_loaded):
    assert connection.get_autocommit()
    defaults = _hnsw_settings()
    assert defaults == ("40", "off")
    with transaction.atomic():
        hnsw_scan_set_local(ef_search=123, iterative_scan="relaxed_order")
        assert _hnsw_settings() == ("123", "relaxed_order")
    assert _hnsw_settings() == defaults


@pytest.mark.django_db(transaction=True)
def test_hnsw_iterative_scan_is_left_alone_before_pgvector_0_8(vector_loaded, monkeypatch):
    monkeypatch.setattr(sql, "pgvector_has_iterative_scan", lambda alias: False)
    with transaction.atomic():
        hnsw_scan_set_local(ef_search=90, iterative_scan="relaxed_order")
        assert _hnsw_settings() == ("90", "off")
    assert _hnsw_settings() == ("40", "off")


# --- TitleVector ----------------------------------------------------------------------------------


def _title_matches(word: str) -> list[str]:
    query = SearchQuery(word, search_type="plain", config="english")
    matches = Runbook.objects.annotate(title=TitleVector()).filter(title=query).order_by("slug")
    return list(matches.values_list("slug", flat=True))


def test_title_vector_matches_camelcase_split_title_words():
    RunbookFactory(slug="t/first", name="KubePodCrashLooping", description="Nothing about disks.", tags=["paging"])
    RunbookFactory(slug="t/second", name="NodeDiskFull", description="A pod may crash when this happens.", tags=[])
    assert _title_matches("crash") == ["t/first"]  # the description of t/second is not in the title vector
    assert _title_matches("looping") == ["t/first"]
    assert _title_matches("pod") == ["t/first"]
    assert _title_matches("disk") == ["t/second"]
    assert _title_matches("paging") == ["t/first"]  # tags are in it too
    assert _title_matches("happens") == []


def test_title_vector_reads_the_quoted_column_of_the_runbooks_table():
    sql_text = str(Runbook.objects.annotate(title=TitleVector()).values("title").query)
    assert '"runbooks"."search_title"' in sql_text


# --- queryset_condition + candidate_rows ------------------------------------------------------------


def _unit(index: int, dims: int = 384) -> list[float]:
    vector = [0.0] * dims
    vector[index] = 1.0
    return vector


def _vector_text(values: list[float]) -> str:
    return "[" + ",".join(str(value) for value in values) + "]"


@pytest.fixture
def restricted_catalogue():
    """Four runbooks about disks: open, restricted to team-a, restricted to team-b, and a draft; one disabled."""
    team_a, team_b = GroupFactory(name="team-a"), GroupFactory(name="team-b")
    rows = {
        "open": RunbookFactory(name="DiskFullOpen", embedding=_unit(0)),
        "team-a": RunbookFactory(name="DiskFullTeamA", embedding=_unit(1), allowed_groups=[team_a]),
        "team-b": RunbookFactory(name="DiskFullTeamB", embedding=_unit(2), allowed_groups=[team_b]),
        "draft": RunbookFactory(name="DiskFullDraft", embedding=_unit(3), status=RunbookStatus.DRAFT),
        "disabled": RunbookFactory(name="DiskFullDisabled", embedding=_unit(4), enabled=False),
    }
    member = UserFactory(username="team-a-member")
    member.groups.add(team_a)
    return rows, member


def _rows(queryset, **kwargs) -> dict:
    arguments = {"vector": _vector_text(_unit(0)), "title_words": ["disk"], "document_words": [],
                 "all_words": ["disk", "full"], "limit": 30, "extra_ids": []} | kwargs
    with transaction.atomic():
        hnsw_scan_set_local(ef_search=80, iterative_scan="relaxed_order")
        return {row.pk: row for row in candidate_rows(condition=queryset_condition(queryset), **arguments)}


def test_the_statement_applies_the_querysets_visibility_exactly(restricted_catalogue):
    rows, member = restricted_catalogue
    outsider = UserFactory(username="outsider")
    for reader in (member, outsider, operator_reader()):
        for queryset in (visible_runbooks(reader), searchable_runbooks(reader)):
            expected = set(queryset.filter(name__startswith="DiskFull").values_list("pk", flat=True))
            assert set(_rows(queryset)) == expected
    assert set(_rows(searchable_runbooks(member))) == {rows["open"].pk, rows["team-a"].pk}
    assert _rows(visible_runbooks(None)) == {}  # anonymous: none() compiles to FALSE


def test_a_runbook_in_play_the_reader_may_not_see_is_never_returned(restricted_catalogue):
    rows, member = restricted_catalogue
    found = _rows(searchable_runbooks(member), vector=None, title_words=[], all_words=[],
                  extra_ids=[rows["team-b"].pk, rows["team-a"].pk])
    assert set(found) == {rows["team-a"].pk}


def test_each_leg_reports_what_it_found(restricted_catalogue):
    rows, member = restricted_catalogue
    found = _rows(searchable_runbooks(member), extra_ids=[rows["team-a"].pk])
    open_row, team_row = found[rows["open"].pk], found[rows["team-a"].pk]
    assert open_row.leg_distance == pytest.approx(0.0)  # the query vector is its own
    assert team_row.leg_distance == pytest.approx(1.0)  # orthogonal
    assert team_row.direct_distance == pytest.approx(1.0)  # asked for: a runbook in play
    assert open_row.direct_distance == pytest.approx(0.0)  # computed for every row once a runbook is in play
    assert open_row.title_rank > 0 and open_row.document_rank is None
    assert open_row.keyword_rank > 0
    assert {"embedding", "search_vector", "body_markdown"} <= open_row.get_deferred_fields()
    assert _rows(searchable_runbooks(member))[rows["open"].pk].direct_distance is None  # nothing in play


def test_the_document_leg_finds_what_the_title_does_not():
    runbook = RunbookFactory(name="NodeThing", description="The kernel ran out of inodes.", tags=[])
    RunbookFactory(name="OtherThing", description="Nothing to see.", tags=[])
    found = _rows(Runbook.objects.all(), vector=None, title_words=["inodes"], document_words=["inodes"],
                  all_words=["inodes"])
    assert set(found) == {runbook.pk}
    assert found[runbook.pk].title_rank is None and found[runbook.pk].document_rank > 0


def test_success_counts_count_finished_runs_only():
    runbook, other = RunbookFactory(), RunbookFactory()
    for status in (ExecutionStatus.SUCCEEDED, ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED,
                   ExecutionStatus.IN_PROGRESS, ExecutionStatus.ABANDONED):
        RunbookExecutionFactory(runbook=runbook, status=status)
    RunbookExecutionFactory(runbook=other, status=ExecutionStatus.IN_PROGRESS)
    counts = success_counts([runbook.pk, other.pk], succeeded=ExecutionStatus.SUCCEEDED,
                            failed=ExecutionStatus.FAILED)
    assert counts == {runbook.pk: (2, 3)}


def test_candidate_rows_carry_the_finished_runs_success_counts_counts(restricted_catalogue):
    rows, member = restricted_catalogue
    for status in (ExecutionStatus.SUCCEEDED, ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED,
                   ExecutionStatus.IN_PROGRESS, ExecutionStatus.ABANDONED):
        RunbookExecutionFactory(runbook=rows["open"], status=status)
    RunbookExecutionFactory(runbook=rows["team-a"], status=ExecutionStatus.IN_PROGRESS)
    statuses = (ExecutionStatus.SUCCEEDED.value, ExecutionStatus.FAILED.value)
    found = _rows(searchable_runbooks(member), success_statuses=statuses)
    counted = success_counts(list(found), succeeded=statuses[0], failed=statuses[1])
    assert {pk: (row.succeeded_runs, row.finished_runs) for pk, row in found.items() if row.finished_runs} == counted
    assert (found[rows["open"].pk].succeeded_runs, found[rows["open"].pk].finished_runs) == (2, 3)
    assert found[rows["team-a"].pk].finished_runs == 0  # in progress only: nothing finished
    assert _rows(searchable_runbooks(member))[rows["open"].pk].finished_runs is None  # not asked for


def test_search_finds_runbooks_not_embedded_yet_through_the_document_leg(user):
    # Imported, not embedded: the vector leg finds nothing, so the full document is searched as well.
    runbook = RunbookFactory(name="NodeThing", description="The kernel ran out of inodes.", tags=[])
    outcome = runbook_search(query="out of inodes", user=user)
    assert [result.runbook.pk for result in outcome.results] == [runbook.pk]
    assert not outcome.degraded
