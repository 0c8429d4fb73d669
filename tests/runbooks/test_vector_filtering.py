"""A user who may see only a small share of the runbooks still gets a full list of vector candidates.

HNSW applies the visibility filter after the index scan: with pgvector's defaults a user seeing 10 % of
the rows got ~4 of 30 candidates (benchmarks/hnsw_tuning.py). The search sets an iterative scan.
"""

import numpy as np
import pytest
from django.db import connection

from runbooks.models import Runbook
from runbooks.search import SearchConfig, runbook_candidates
from runbooks.selectors import visible_runbooks
from tests.factories import GroupFactory

pytestmark = pytest.mark.django_db

ROWS = 1500


@pytest.fixture
def mostly_restricted(user):
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(ROWS, 384))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    runbooks = Runbook.objects.bulk_create(
        Runbook(slug=f"scale/r{i}", name=f"Synthetic{i}", description="", tags=[], steps=[], embedding=vector.tolist())
        for i, vector in enumerate(vectors)
    )
    secret = GroupFactory(name="secret")
    through = Runbook.allowed_groups.through
    through.objects.bulk_create(
        through(runbook_id=runbook.pk, group_id=secret.pk) for i, runbook in enumerate(runbooks) if i % 10
    )
    with connection.cursor() as cursor:
        # Force the index, as the planner does at production sizes. No ANALYZE here: it would leave
        # pg_class.reltuples at 1500 after the rollback (an in-place update) and skew the planner-statistics
        # based term pruning of later tests.
        cursor.execute("SET LOCAL enable_seqscan = off")
    return user


def test_restricted_user_gets_a_full_candidate_list_from_the_hnsw_index(mostly_restricted):
    base = visible_runbooks(mostly_restricted)
    assert base.count() == ROWS // 10
    config = SearchConfig(candidates=30)
    found = runbook_candidates(text="zzqx", base=base, config=config)
    vector_candidates = [candidate for candidate in found.candidates if candidate.semantic != 0.0]
    assert len(vector_candidates) == config.candidates
