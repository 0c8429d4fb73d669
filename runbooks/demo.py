"""Demo data: users, groups and the runbooks in runbooks/demo_data/ (written for this project)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import Group, User
from django.db import transaction

from runbooks.importers import read_jsonl
from runbooks.models import RunbookOrigin
from runbooks.services import runbook_upsert

DEMO_RUNBOOKS = Path(__file__).resolve().parent / "demo_data" / "demo_runbooks.jsonl"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    groups: tuple[str, ...]
    staff: bool = False


def demo_accounts() -> list[DemoAccount]:
    return [
        DemoAccount("admin", os.environ.get("DEMO_ADMIN_PASSWORD", "admin-demo-pass"), ("sre",), staff=True),
        DemoAccount("alice", os.environ.get("DEMO_ALICE_PASSWORD", "alice-demo-pass"), ("sre", "dba")),
        DemoAccount("bob", os.environ.get("DEMO_BOB_PASSWORD", "bob-demo-pass"), ("sre", "platform")),
    ]


@transaction.atomic
def demo_users_ensure() -> list[tuple[DemoAccount, bool]]:
    """Create the demo accounts if missing; an existing account keeps its password."""
    results = []
    for account in demo_accounts():
        user, created = User.objects.get_or_create(
            username=account.username,
            defaults={
                "is_staff": account.staff,
                "is_superuser": account.staff,
                "email": f"{account.username}@example.com",
            },
        )
        if created:
            user.set_password(account.password)
            user.save(update_fields=["password"])
        user.groups.add(*[Group.objects.get_or_create(name=name)[0] for name in account.groups])
        results.append((account, created))
    return results


def demo_runbooks_ensure(path: Path = DEMO_RUNBOOKS) -> dict[str, int]:
    """Upsert the demo runbooks, read like any JSON Lines import (front matter into fields, cleaned body)."""
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for record in read_jsonl(path):
        if record.error:
            raise ValueError(f"{record.source}:{record.line}: {record.error}")
        _, status = runbook_upsert(
            slug=record.slug,
            data={**record.data, "origin": RunbookOrigin.DEMO, "origin_source": ""},
            allowed_groups=record.allowed_groups or [],
            source="demo",
        )
        counts[status] += 1
    return counts
