"""The knowledge-gap report on planted topics (tests/analytics/gaps_fixtures.py), with the real model."""

from __future__ import annotations

import pytest

from analytics.services.gaps import gap_report
from runbooks.services import runbook_upsert, runbooks_embed
from tests.analytics.gaps_fixtures import CERTS, DISK, END, KAFKA, START, plant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def planted(user):
    return plant(user)


def groups_by_topic(report):
    topics = {"disk": set(DISK), "certs": set(CERTS), "kafka": set(KAFKA)}
    found = {}
    for group in report.groups:
        names = [name for name, texts in topics.items() if set(group.texts) <= texts]
        assert len(names) == 1, f"a group mixes topics: {group.texts}"
        found[names[0]] = group
    return found


def test_planted_topics_are_grouped_with_size_trend_examples_and_failed_share(planted, staff_user):
    report = gap_report(user=staff_user, start=START, end=END)
    assert (report.candidates, report.not_embedded, report.ungrouped) == (16, 0, 1)  # the laptop question
    found = groups_by_topic(report)
    assert set(found) == {"disk", "certs", "kafka"}
    certs, disk, kafka = found["certs"], found["disk"], found["kafka"]
    assert (certs.size, disk.size, kafka.size) == (6, 5, 4)
    assert certs.reasons["no_recommendation"] == 6 and certs.failed_share == pytest.approx(2 / 6)
    assert kafka.reasons == {"no_recommendation": 0, "not_helpful": 0, "does_not_fit": 0, "not_clicked": 4, "failed": 0}
    assert certs.growing and sum(certs.trend) == 6 and not disk.growing
    assert len(certs.examples) == 3 and set(certs.examples) <= set(CERTS)
    # A superuser sees the certificate runbook: both it and the disk runbook cover their groups.
    assert certs.covered and certs.nearest[0].slug == "tls/expired" and certs.nearest[0].score >= 0.5
    assert disk.covered and disk.nearest[0].slug == "db/disk-full"
    assert not kafka.covered and kafka.nearest[0].score < 0.5
    # Groups without a covering runbook first.
    assert report.groups[0] is kafka


def test_a_restricted_reader_sees_only_runbooks_they_may_see(planted):
    staff = UserFactory(username="staff-no-secret", is_staff=True)
    found = groups_by_topic(gap_report(user=staff, start=START, end=END))
    certs = found["certs"]
    assert "tls/expired" not in [runbook.slug for group in found.values() for runbook in group.nearest]
    assert not certs.covered  # the runbook that covers it is one they may not see
    assert found["disk"].covered


def test_a_runbook_written_later_turns_the_group_covered(planted, staff_user):
    before = groups_by_topic(gap_report(user=staff_user, start=START, end=END))["kafka"]
    assert not before.covered
    runbook_upsert(
        slug="kafka/consumer-lag",
        data={"name": "Kafka consumer lag", "description": "Consumer group lag grows: consumers fall behind."},
    )
    runbooks_embed()
    after = groups_by_topic(gap_report(user=staff_user, start=START, end=END))["kafka"]
    assert after.covered and after.nearest[0].slug == "kafka/consumer-lag"


def test_a_restricted_reader_does_not_count_failed_runs_of_a_runbook_they_may_not_see(planted):
    staff = UserFactory(username="staff-no-secret", is_staff=True)
    certs = groups_by_topic(gap_report(user=staff, start=START, end=END))["certs"]
    # The two failed runs were of the certificate runbook, restricted to "secret".
    assert certs.reasons["failed"] == 0 and certs.failed_share == 0
    member = UserFactory(username="staff-in-secret", is_staff=True)
    member.groups.add(planted.cert_runbook.allowed_groups.get())
    certs = groups_by_topic(gap_report(user=member, start=START, end=END))["certs"]
    assert certs.reasons["failed"] == 2
