"""Archiving a month of events (analytics' archive_event_month / restore_event_month over
audit.services.partitions): exported, verified, dropped; the dashboard keeps the month; restorable."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError

from analytics.services.dashboard import analytics_dashboard
from analytics.services.facts import analytics_facts_refresh
from analytics.services.rollups import analytics_rollups_refresh
from audit.models import RunbookInteractionEvent
from audit.services import partitions
from audit.services.partitions import event_partitions_ensure
from audit.services.store import EventInput, interaction_event_record
from audit.sql import monthly_partitions, partition_ensure
from tests.analytics.fixtures import END, START, build_world

pytestmark = pytest.mark.django_db(transaction=True)
JANUARY = "runbook_interaction_events_y2026m01"


def january_events():
    return sorted(
        RunbookInteractionEvent.objects.filter(
            event_timestamp__gte=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            event_timestamp__lt=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
        ).values_list("event_id", "event_type", "event_timestamp", "audit_log_id", "runbook_id", "rank")
    )


def figures(user):
    dashboard = analytics_dashboard(user=user, start=START, end=END, now=END + dt.timedelta(days=5))
    return (
        dashboard.rates,
        dashboard.top_runbooks,
        dashboard.click_rank_histogram,
        [s.count for s in dashboard.funnel],
    )


@pytest.fixture
def january(user, staff_user):
    build_world(user)
    event_partitions_ensure()  # the month's rows move from DEFAULT into their partition
    assert JANUARY in monthly_partitions()
    return january_events()


def refresh():
    analytics_rollups_refresh(settled_before=analytics_facts_refresh().settled_before)


def test_a_month_is_exported_verified_dropped_and_the_dashboard_keeps_it(january, staff_user, tmp_path):
    refresh()
    before = figures(staff_user)
    assert before[0].audit_logs == 6 and len(january) == 22
    call_command("archive_event_month", month="2026-01", directory=tmp_path, yes=True)
    assert JANUARY not in monthly_partitions() and january_events() == []
    manifest = json.loads((tmp_path / "runbook-events-2026-01.json").read_text())
    assert (manifest["rows"], manifest["format"], manifest["file"]) == (22, "csv.gz", "runbook-events-2026-01.csv.gz")
    with gzip.open(tmp_path / "runbook-events-2026-01.csv.gz", "rt", newline="") as text:
        rows = list(csv.DictReader(text))
    assert sorted(row["event_id"] for row in rows) == sorted(str(event[0]) for event in january)
    assert figures(staff_user) == before  # the rollups and facts hold every metric of the month

    call_command("restore_event_month", tmp_path / "runbook-events-2026-01.csv.gz")
    assert JANUARY in monthly_partitions() and january_events() == january


def test_archive_is_refused_until_the_rollups_cover_the_month_and_without_yes(january, tmp_path):
    with pytest.raises(CommandError, match="do not cover 2026-01 yet"):
        call_command("archive_event_month", month="2026-01", directory=tmp_path, yes=True)
    with pytest.raises(CommandError, match="add --yes"):
        call_command("archive_event_month", month="2026-01", directory=tmp_path)
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("archive_event_month", month="January", directory=tmp_path, yes=True)
    this_month = dt.date.today().strftime("%Y-%m")
    with pytest.raises(CommandError, match="can be archived"):
        call_command("archive_event_month", month=this_month, directory=tmp_path, yes=True)
    with pytest.raises(CommandError, match="no partition for 2025-06"):
        call_command("archive_event_month", month="2025-06", directory=tmp_path, yes=True)
    assert JANUARY in monthly_partitions() and len(january_events()) == 22


def test_a_damaged_archive_is_not_restored(january, tmp_path):
    refresh()
    call_command("archive_event_month", month="2026-01", directory=tmp_path, yes=True)
    archive = tmp_path / "runbook-events-2026-01.csv.gz"
    data = bytearray(archive.read_bytes())
    data[-20] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(CommandError, match="does not match the checksum"):
        call_command("restore_event_month", archive)
    assert january_events() == []
    with pytest.raises(CommandError, match="must both exist"):
        call_command("restore_event_month", tmp_path / "nothing.csv.gz")


def test_a_month_the_learning_window_still_reads_is_not_archived(january, tmp_path):
    refresh()
    recent = (dt.date.today() - dt.timedelta(days=100)).replace(day=1)  # before last month, inside 180 days
    partition_ensure(recent)
    with pytest.raises(CommandError, match=f"{recent:%Y-%m} is still read event by event"):
        call_command("archive_event_month", month=f"{recent:%Y-%m}", directory=tmp_path, yes=True)
    assert list(tmp_path.iterdir()) == []
    assert f"runbook_interaction_events_y{recent:%Y}m{recent:%m}" in monthly_partitions()


def test_a_file_whose_rows_are_of_another_month_is_not_restored(january, tmp_path):
    refresh()
    call_command("archive_event_month", month="2026-01", directory=tmp_path, yes=True)
    # The file edited to move every event to March, with checksums that match: the manifest says 2026-01.
    archive, manifest_path = tmp_path / "runbook-events-2026-01.csv.gz", tmp_path / "runbook-events-2026-01.json"
    text = gzip.decompress(archive.read_bytes()).replace(b"2026-01-", b"2026-03-")
    archive.write_bytes(gzip.compress(text))
    manifest = json.loads(manifest_path.read_text())
    manifest["csv_sha256"] = hashlib.sha256(text).hexdigest()
    manifest["file_sha256"] = hashlib.sha256(archive.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="could not be loaded"):
        call_command("restore_event_month", archive)
    march = RunbookInteractionEvent.objects.filter(
        event_timestamp__gte=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        event_timestamp__lt=dt.datetime(2026, 4, 1, tzinfo=dt.UTC),
    )
    assert not march.exists() and JANUARY not in monthly_partitions()


def test_a_directory_that_cannot_be_written_is_a_command_error_and_nothing_is_dropped(january, tmp_path):
    refresh()
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    with pytest.raises(CommandError, match="could not be written"):
        call_command("archive_event_month", month="2026-01", directory=a_file / "archive", yes=True)
    assert JANUARY in monthly_partitions() and len(january_events()) == 22


def test_a_failed_drop_leaves_no_archive_behind_and_the_month_in_place(january, tmp_path, monkeypatch):
    refresh()

    def drop_fails(name):
        raise DatabaseError("lock timeout")

    monkeypatch.setattr(partitions, "partition_detach_and_drop", drop_fails)
    with pytest.raises(DatabaseError):
        call_command("archive_event_month", month="2026-01", directory=tmp_path, yes=True)
    # No file, partial or manifest that would pass for an archive of a month that is still there.
    assert list(tmp_path.iterdir()) == []
    assert JANUARY in monthly_partitions() and len(january_events()) == 22


def test_an_event_with_a_field_over_128_kib_is_archived(january, user, tmp_path):
    csv.field_size_limit(131072)  # Python's default, whatever an earlier test set
    event = RunbookInteractionEvent.objects.filter(event_timestamp__month=1).first()
    interaction_event_record(
        event=EventInput(runbook_id=event.runbook_id, event_type="viewed_detail", user_id=user.pk,
                         metadata={"note": "x" * 200_000}),
        event_timestamp=dt.datetime(2026, 1, 20, tzinfo=dt.UTC),
    )
    refresh()
    call_command("archive_event_month", month="2026-01", directory=tmp_path, yes=True)
    manifest = json.loads((tmp_path / "runbook-events-2026-01.json").read_text())
    assert manifest["rows"] == 23 and JANUARY not in monthly_partitions()
