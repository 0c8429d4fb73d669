"""Reads for audit logs: always scoped to the requesting user."""

from __future__ import annotations

from django.db.models import QuerySet

from audit.details import ActionDetails, PresentedSolution
from audit.models import AuditLog


def audit_logs_for_user(user) -> QuerySet[AuditLog]:
    return AuditLog.objects.filter(user=user)


def audit_log_details(audit_log: AuditLog) -> ActionDetails:
    """What the answer presented, typed (the one reader of ai_action_details)."""
    return ActionDetails.from_json(audit_log.ai_action_details)


def presented_solution(audit_log: AuditLog, *, solution_id: str, solution_type: str) -> PresentedSolution | None:
    return audit_log_details(audit_log).solution(solution_id=solution_id, solution_type=solution_type)


def latest_audit_log_presenting(*, user, session_id, solution_id: str, solution_type: str) -> AuditLog | None:
    """The most recent audit log of the session that presented the solution."""
    return (
        audit_logs_for_user(user)
        .filter(
            session_id=session_id,
            ai_action_details__solutions_presented__contains=[{"id": str(solution_id), "type": solution_type}],
        )
        .order_by("-created_at")
        .first()
    )
