import datetime as dt

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.services.store import EventInput, interaction_event_record
from tests.runbooks.factories import RunbookFactory

pytestmark = pytest.mark.django_db


def _partitions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'runbook_interaction_events'"
        )
        return {row[0] for row in cursor.fetchall()}


def test_months_ahead_creates_future_partitions_and_rerun_is_a_no_op(capsys):
    call_command("ensure_event_partitions", "--months-ahead", "8")
    assert "created partition" in capsys.readouterr().out
    future = dt.date.today().replace(day=1) + dt.timedelta(days=31 * 8)
    assert f"runbook_interaction_events_y{future:%Y}m{future:%m}" in _partitions()
    call_command("ensure_event_partitions", "--months-ahead", "8")
    assert "all partitions already exist" in capsys.readouterr().out


def test_drop_requires_confirmation():
    with pytest.raises(CommandError, match="--yes"):
        call_command("ensure_event_partitions", "--drop-older-than", "6")


def test_every_argument_is_checked_before_any_partition_is_made():
    before = _partitions()
    for args, words in ((("--drop-older-than", "0", "--months-ahead", "9"), "at least 1 month"),
                        (("--drop-older-than", "6", "--months-ahead", "9"), "--yes")):
        with pytest.raises(CommandError, match=words):
            call_command("ensure_event_partitions", *args)
    assert _partitions() == before, "a refused run changed nothing"


def test_drop_older_than_removes_old_partitions_and_their_events(capsys):
    runbook = RunbookFactory()
    old = dt.datetime(2020, 2, 10, tzinfo=dt.UTC)
    interaction_event_record(event=EventInput(runbook_id=runbook.pk, event_type="presented"), event_timestamp=old)
    call_command("ensure_event_partitions")
    assert "runbook_interaction_events_y2020m02" in _partitions()
    call_command("ensure_event_partitions", "--drop-older-than", "12", "--yes")
    assert "runbook_interaction_events_y2020m02" not in _partitions()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runbook_interaction_events WHERE event_timestamp < '2021-01-01'")
        assert cursor.fetchone()[0] == 0
