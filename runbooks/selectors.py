"""Reads of runbooks that other apps use: visibility (RBAC), execution success, embedding status.

Every caller that shows runbooks to a user goes through ``visible_runbooks(user)``. The search itself
is runbooks.search.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, QuerySet

from runbooks.embeddings import embedding_hash, get_embedder, runbook_document
from runbooks.models import ExecutionStatus, Runbook
from runbooks.sql import success_counts


def visible_runbooks(user) -> QuerySet[Runbook]:
    """Enabled runbooks ``user`` may see: unrestricted ones, or restricted to one of their groups."""
    queryset = Runbook.objects.filter(enabled=True)
    if user is None or not user.is_authenticated:
        return queryset.none()
    if user.is_superuser:
        return queryset
    restricted = Runbook.allowed_groups.through.objects.filter(runbook_id=OuterRef("pk"))
    allowed = restricted.filter(group_id__in=user.groups.values("pk"))
    return queryset.filter(~Exists(restricted) | Exists(allowed))


def operator_reader():
    """An unsaved superuser for operator tools (management commands) that search every enabled runbook."""
    return get_user_model()(username="(operator)", is_superuser=True, is_staff=True)


def embedding_status(runbook: Runbook) -> str:
    """current / stale / missing, without loading the model (hash of text + model name)."""
    if runbook.embedding_hash == "" or runbook.embedding is None:
        return "missing"
    model_name = get_embedder().model_name
    if runbook.embedding_hash != embedding_hash(runbook_document(runbook), model_name):
        return "stale"
    return "current"


def runbook_success_stats(runbook_ids) -> dict:
    """{runbook_id: (succeeded, finished)} over finished executions (succeeded or failed)."""
    return success_counts(runbook_ids, succeeded=ExecutionStatus.SUCCEEDED, failed=ExecutionStatus.FAILED)


def smoothed_success(succeeded: int, finished: int, prior: float = 2.0) -> float:
    """Beta(prior, prior) smoothing: 0.5 (neutral) with no data, the observed rate as data grows."""
    return (succeeded + prior) / (finished + 2 * prior)
