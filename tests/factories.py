"""Typed factory-boy factories shared by every test package."""

from __future__ import annotations

import factory
from django.contrib.auth.models import Group, User

from runbooks.models import Runbook


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"group-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"engineer{n}")
    email = factory.LazyAttribute(lambda obj: f"{obj.username}@example.com")
    password = factory.django.Password("correct-horse-battery")

    @factory.post_generation
    def groups(self, create: bool, extracted, **kwargs) -> None:
        if create and extracted:
            self.groups.add(*extracted)


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
