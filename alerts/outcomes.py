"""An alert's resolution as the outcome of its presentations (docs/alerts.md, "Outcomes").

When an alert resolves, each ``AlertPresentation`` of it gets one ``alert_resolved`` interaction event on
its audit log, at the resolution time, with the alert's start in the metadata: analytics reads "time from
the alert's start to the first click" and "time from the click to resolved" from the audit store alone
(it sits below alerts and cannot read alert rows).

The event's id is derived from the presentation's audit log (uuid5), so the event store's id claim
(``EventIdClaim``) refuses a second one: a repeated resolved notification, or a retried transaction, adds
nothing. The event is filed under the presentation's first runbook (events need one); a presentation that
showed no runbook has no click to time and gets no event.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from django.utils import timezone

from alerts.models import Alert, AlertPresentation
from audit.details import ActionDetails
from audit.models import EventSource, EventType
from audit.services.store import DuplicateEvent, EventInput, interaction_event_record

# Fixed forever: the ids of events already written depend on it.
ALERT_RESOLVED_NAMESPACE = uuid.UUID("5b0c8f7e-2a51-4c55-9a41-3f5e1f0d7a19")


def alert_resolved_event_id(audit_log_id: uuid.UUID | str) -> uuid.UUID:
    """The one ``alert_resolved`` event id a presentation's audit log can have."""
    return uuid.uuid5(ALERT_RESOLVED_NAMESPACE, f"alert_resolved:{audit_log_id}")


def alert_resolutions_record(*, alert_ids: Iterable[int], resolved_at: dt.datetime | None = None) -> int:
    """Append an ``alert_resolved`` event for each presentation of these alerts that has none yet; returns
    the events written. The time is ``resolved_at``, else each alert's own ``ends_at`` (when Alertmanager says
    it resolved), else now. Runs in the caller's transaction (the intake's store); each insert has its own
    savepoint, so a duplicate leaves the transaction usable. 1 query + 1 insert per presentation."""
    ids = sorted(set(alert_ids))
    if not ids:
        return 0
    written = 0
    presentations = (
        AlertPresentation.objects.filter(alert_id__in=ids)
        .select_related("alert", "audit_log")
        .order_by("alert_id", "presented_at", "pk")
    )
    for presentation in presentations:
        solutions = ActionDetails.from_json(presentation.audit_log.ai_action_details).runbook_solutions
        if not solutions:
            continue
        first = min(solutions, key=lambda solution: solution.rank)
        alert = presentation.alert
        when = resolved_at or alert.ends_at or timezone.now()
        try:
            interaction_event_record(
                event=EventInput(
                    runbook_id=first.id,
                    event_type=EventType.ALERT_RESOLVED,
                    user_id=presentation.user_id,
                    audit_log_id=presentation.audit_log_id,
                    rank=first.rank,
                    source=EventSource.ALERT,
                    event_id=alert_resolved_event_id(presentation.audit_log_id),
                    metadata={
                        "alert_id": alert.pk,
                        "starts_at": alert.starts_at.isoformat(),
                        "resolved_at": when.isoformat(),
                    },
                ),
                event_timestamp=when,
            )
        except DuplicateEvent:
            continue
        written += 1
    return written


def alert_for_execution(execution) -> Alert | None:
    """The alert a guided run was started from: its audit log is an alert presentation (a card of the alert
    page, or a link of the seeded "Ask about this alert" answer); None otherwise. 1 query."""
    if not execution.audit_log_id:
        return None
    presentation = AlertPresentation.objects.filter(audit_log_id=execution.audit_log_id).select_related("alert").first()
    return None if presentation is None else presentation.alert
