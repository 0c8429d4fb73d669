"""Reads other apps use: visibility (RBAC)."""

import pytest

from runbooks.selectors import visible_runbooks
from tests.factories import GroupFactory
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db


def test_visible_runbooks_rbac(user, other_user):
    team = GroupFactory(name="team")
    user.groups.add(team)
    open_book = RunbookFactory()
    restricted = RunbookFactory(allowed_groups=[team])
    RunbookFactory(enabled=False)
    assert set(visible_runbooks(user)) == {open_book, restricted}
    assert set(visible_runbooks(other_user)) == {open_book}
    assert list(visible_runbooks(None)) == []
