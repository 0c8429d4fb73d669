import json

from django.contrib import admin
from django.db.models import QuerySet

from runbooks.models import Runbook, RunbookExecution
from runbooks.selectors import embedding_status
from runbooks.services import runbook_save_from_admin


class EmbeddingStatusFilter(admin.SimpleListFilter):
    title = "embedding"
    parameter_name = "embedding"

    def lookups(self, request, model_admin):
        return [("present", "Present"), ("missing", "Missing")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() == "missing":
            return queryset.filter(embedding__isnull=True)
        if self.value() == "present":
            return queryset.filter(embedding__isnull=False)
        return queryset


@admin.register(Runbook)
class RunbookAdmin(admin.ModelAdmin):
    list_display = (
        "name", "slug", "service", "category", "enabled", "is_automated", "version", "embedding_state", "updated_at"
    )
    list_filter = ("enabled", "is_automated", "category", "service", "allowed_groups", EmbeddingStatusFilter)
    search_fields = ("name", "slug", "description", "service")
    date_hierarchy = "updated_at"
    filter_horizontal = ("allowed_groups",)
    readonly_fields = (
        "id", "version", "created_at", "updated_at", "embedding_state", "embedding_model", "front_matter"
    )
    fieldsets = (
        (None, {"fields": (
            "id", "slug", "name", "display_title", "description", "tags", "service", "category", "enabled"
        )}),
        ("Content", {"fields": ("steps", "body_markdown", "front_matter")}),
        ("Automation", {"fields": ("is_automated", "automation_ref")}),
        ("Access", {"fields": ("allowed_groups",)}),
        ("Search", {"fields": ("embedding_state", "embedding_model", "version", "created_at", "updated_at")}),
    )

    @admin.display(description="Other front matter")
    def front_matter(self, obj: Runbook) -> str:
        """Keys of the source's front matter with no field of their own (runbooks/bodies.py), read-only."""
        extra = obj.front_matter_extra or {}
        return ", ".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in extra.items()) or "–"

    @admin.display(description="Embedding")
    def embedding_state(self, obj: Runbook) -> str:
        return embedding_status(obj)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("search_vector")

    def save_model(self, request, obj, form, change):
        runbook_save_from_admin(runbook=obj, changed_fields=form.changed_data if change else [])


@admin.register(RunbookExecution)
class RunbookExecutionAdmin(admin.ModelAdmin):
    list_display = ("runbook", "user", "status", "started_at", "finished_at")
    list_filter = ("status",)
    search_fields = ("runbook__name", "runbook__slug", "user__username", "notes")
    date_hierarchy = "started_at"
    list_select_related = ("runbook", "user")
    readonly_fields = [field.name for field in RunbookExecution._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
