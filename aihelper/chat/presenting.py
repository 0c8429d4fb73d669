"""What a turn's search becomes on screen and in the prompt: typed presented solutions and runbook contexts."""

from __future__ import annotations

from aihelper.chat.answers import runbook_url
from aihelper.chat.conversation import TurnSearch
from aihelper.chat.prompts import RunbookContext
from audit.details import PresentedSolution
from runbooks.access import runbook_can_execute


def presented_solutions(*, search: TurnSearch, user) -> tuple[PresentedSolution, ...]:
    recommended = search.outcome.recommended
    group_ids = set(user.groups.values_list("pk", flat=True)) if recommended else set()
    return tuple(
        PresentedSolution(
            rank=result.rank,
            type="runbook",
            id=str(result.runbook.pk),
            slug=result.runbook.slug,
            title=result.runbook.name,
            confidence=result.confidence,
            confidence_components=result.components,
            success_rate=result.success_rate,
            success_samples=result.success_samples,
            can_execute=runbook_can_execute(runbook=result.runbook, user=user, user_group_ids=group_ids),
            url=runbook_url(result.runbook.pk),
            carried_over=str(result.runbook.pk) in search.carried,
            runbook_version=result.runbook.version,
        )
        for result in recommended
    )


def runbook_contexts(*, search: TurnSearch, solutions: tuple[PresentedSolution, ...]) -> list[RunbookContext]:
    """The presented runbooks as the prompt shows them; the first carries the part the question is about."""
    by_id = {str(result.runbook.pk): result.runbook for result in search.outcome.recommended}
    return [
        RunbookContext(
            solution=solution,
            description=by_id[solution.id].description,
            steps=tuple(by_id[solution.id].steps or ()),
            part=search.part if index == 0 else None,
            service=by_id[solution.id].service,
            category=by_id[solution.id].category,
        )
        for index, solution in enumerate(solutions)
    ]
