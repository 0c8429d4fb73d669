from django.contrib import admin

from audit.models import AuditLog, InteractionEventRow
from audit.selectors import audit_log_details


class ReadOnlyAdmin(admin.ModelAdmin):
    """Audit rows and events are append-only: viewable, never added, changed or deleted here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "short_query", "strategy", "solutions", "clicks", "llm_provider", "degraded")
    list_filter = ("degraded", "llm_provider", "source")
    search_fields = ("query", "user__username")
    date_hierarchy = "created_at"
    list_select_related = ("user",)

    @admin.display(description="Query")
    def short_query(self, obj: AuditLog) -> str:
        return obj.query[:80]

    @admin.display(description="Strategy")
    def strategy(self, obj: AuditLog) -> str:
        return audit_log_details(obj).presentation_strategy

    @admin.display(description="Presented")
    def solutions(self, obj: AuditLog) -> int:
        return len(audit_log_details(obj).solutions)

    @admin.display(description="Clicks")
    def clicks(self, obj: AuditLog) -> int:
        return len(obj.user_modifications.get("clicks", []))


@admin.register(InteractionEventRow)
class InteractionEventAdmin(ReadOnlyAdmin):
    list_display = ("event_timestamp", "event_type", "runbook", "rank", "source", "user", "audit_log_id", "variant")
    list_filter = ("event_type", "source", "variant")
    search_fields = ("runbook__name", "runbook__slug", "user__username")
    date_hierarchy = "event_timestamp"
    list_select_related = ("runbook", "user")
    show_full_result_count = False
