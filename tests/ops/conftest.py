"""The chat fixtures (an embedded runbook library, offline provider) for the operations tests."""

from tests.aihelper.conftest import library, offline, recommend_all  # noqa: F401 - fixtures shared by name
