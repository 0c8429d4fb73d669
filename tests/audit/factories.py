"""Audit logs and interaction events, written through audit's services as production writes them."""

from __future__ import annotations

import datetime as dt

import factory

from audit.details import ActionDetails, PresentedSolution
from audit.models import AuditLog, EventSource, RunbookInteractionEvent
from audit.services.store import EventInput, audit_log_create, interaction_event_record
from tests.factories import UserFactory


def presented_solutions(runbooks) -> tuple[PresentedSolution, ...]:
    """Runbooks (or ready PresentedSolutions) in rank order -> what an answer presented."""
    return tuple(
        item
        if isinstance(item, PresentedSolution)
        else PresentedSolution(rank=rank, id=str(item.pk), slug=item.slug, title=item.name, url=f"/runbooks/{item.pk}/")
        for rank, item in enumerate(runbooks, start=1)
    )


def default_strategy(count: int) -> str:
    return {0: "no_solutions", 1: "single_solution"}.get(count, "multiple_options")


class AuditLogFactory(factory.Factory):
    """``AuditLogFactory(user=u, presented=[runbook_a, runbook_b])``: the audit log of an answer that
    presented those runbooks at ranks 1, 2..., with their ``presented`` events (audit_log_create)."""

    class Meta:
        model = AuditLog

    user = factory.SubFactory(UserFactory)
    session = None
    query = "disk full on db host"
    response = "See the runbooks below."
    presented: tuple = ()
    strategy: str | None = None
    experiment = ""
    variant = ""
    source = EventSource.DIRECT
    page_context = None
    created_at: dt.datetime | None = None

    @classmethod
    def _create(cls, model_class, *, presented=(), strategy=None, experiment="", variant="", **kwargs) -> AuditLog:
        solutions = presented_solutions(presented)
        details = ActionDetails(
            solutions=solutions,
            presentation_strategy=strategy or default_strategy(len(solutions)),
            experiment=experiment,
            variant=variant,
        )
        return audit_log_create(details=details, **kwargs)

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        raise NotImplementedError("audit logs are append-only rows: create them (AuditLogFactory(...))")


def interaction_event(
    *, audit_log: AuditLog, runbook, event_type: str, at: dt.datetime | None = None, user=None, rank=None,
    source: str = EventSource.DIRECT, event_id=None,
) -> RunbookInteractionEvent:
    """An event about ``runbook`` in the answer ``audit_log`` (rank taken from what it presented)."""
    details = ActionDetails.from_json(audit_log.ai_action_details)
    if rank is None:
        solution = details.solution(solution_id=runbook.pk, solution_type="runbook")
        rank = solution.rank if solution else None
    return interaction_event_record(
        event=EventInput(
            runbook_id=runbook.pk,
            event_type=event_type,
            user_id=(user or audit_log.user).pk,
            session_id=audit_log.session_id,
            audit_log_id=audit_log.pk,
            rank=rank,
            source=source,
            event_id=event_id,
            experiment=details.experiment,
            variant=details.variant,
        ),
        event_timestamp=at,
    )
