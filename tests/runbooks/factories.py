"""Runbooks and guided executions."""

from __future__ import annotations

import factory
from django.utils import timezone

from runbooks.models import ExecutionStatus, Runbook, RunbookExecution
from tests.factories import UserFactory


class RunbookFactory(factory.django.DjangoModelFactory):
    """Runbook rows written directly (no embedding); use runbooks.services for embedded ones."""

    class Meta:
        model = Runbook
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"test/runbook-{n}")
    name = factory.Sequence(lambda n: f"TestRunbook{n}")
    description = "A runbook used in tests."
    tags = factory.LazyFunction(lambda: ["test"])
    steps = factory.LazyFunction(lambda: [{"title": "Look at it", "detail": "", "command": "echo ok"}])

    @factory.post_generation
    def allowed_groups(self, create: bool, extracted, **kwargs) -> None:
        if create and extracted:
            self.allowed_groups.add(*extracted)


class RunbookExecutionFactory(factory.django.DjangoModelFactory):
    """A guided run as a row (no events): for reads over executions; runbooks.executions writes the real ones."""

    class Meta:
        model = RunbookExecution

    runbook = factory.SubFactory(RunbookFactory)
    user = factory.SubFactory(UserFactory)
    status = ExecutionStatus.IN_PROGRESS
    started_at = factory.LazyFunction(timezone.now)
    step_progress = factory.LazyFunction(dict)
