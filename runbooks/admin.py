import json

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from runbooks.authoring_access import review_due, review_due_at
from runbooks.forms import aliases_field, source_url_field
from runbooks.models import Runbook, RunbookExecution, RunbookStatus
from runbooks.selectors import embedding_status
from runbooks.services import runbook_before_admin_save, runbook_save_from_admin
from runbooks.version_views import version_view, versions_view


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


class ReviewDueFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [("due", "Review due")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        return review_due(queryset) if self.value() == "due" else queryset


class RunbookAdminForm(forms.ModelForm):
    # One comma-separated line, names stripped and checked one by one (the editor's field).
    aliases = aliases_field()
    source_url = source_url_field()

    class Meta:
        model = Runbook
        fields = ("source_url", "aliases")  # the admin's fieldsets decide the rest


@admin.register(Runbook)
class RunbookAdmin(admin.ModelAdmin):
    """Steps and the Markdown body are written in the runbook editor (runbooks/authoring.py), which this page
    links to (raw JSON steps are not edited here); the other fields, lifecycle, access, ownership and
    automation here. Every save that changes something versioned is a version. Runbooks are retired, not
    deleted (their history and analytics stay)."""

    change_form_template = "admin/runbooks/runbook/change_form.html"
    form = RunbookAdminForm
    # Few, narrow columns so the list fits beside the admin's two sidebars at 1366 px (the rest are filters).
    list_display = ("name", "status", "searched", "origin", "owner_group", "review_flag", "embedding_state")
    list_filter = (
        "status", "enabled", "origin", ReviewDueFilter, "owner_group", "is_automated", "category", "service",
        "allowed_groups", EmbeddingStatusFilter,
    )
    list_select_related = ("owner_group",)
    search_fields = ("name", "slug", "description", "service", "origin_source", "source_url")
    date_hierarchy = "updated_at"
    filter_horizontal = ("allowed_groups",)
    readonly_fields = (
        "id", "steps_list", "body_markdown", "front_matter",
        "origin", "origin_source", "version", "created_at", "updated_at", "reviewed_at", "review_flag",
        "embedding_state", "embedding_model",
    )
    fieldsets = (
        (None, {"fields": ("id", "slug", "name", "display_title", "status", "enabled", "service", "category")}),
        ("Content (steps and Markdown are edited in the runbook editor)", {
            "fields": ("description", "tags", "steps_list", "body_markdown", "front_matter"),
        }),
        ("Alerts (an alert's runbook_url or alert name links it here)", {"fields": ("source_url", "aliases")}),
        ("Ownership", {"fields": ("owner_group", "review_interval_days", "reviewed_at", "review_flag")}),
        ("Origin", {"fields": ("origin", "origin_source")}),
        ("Automation", {"fields": ("is_automated", "automation_ref")}),
        ("Access", {"fields": ("allowed_groups",)}),
        ("Search", {"fields": ("embedding_state", "embedding_model", "version", "created_at", "updated_at")}),
    )

    class Media:
        css = {"all": ("css/runbook_admin.css",)}

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<uuid:object_id>/versions/", view(versions_view), name="runbooks_runbook_versions"),
            path("<uuid:object_id>/versions/<int:number>/", view(version_view), name="runbooks_runbook_version"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("runbooks:new")

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Steps")
    def steps_list(self, obj: Runbook) -> SafeString:
        if not obj.steps:
            return format_html("{}", "No steps.")
        items = format_html_join("", "<li>{}</li>", ((step.get("title", ""),) for step in obj.steps))
        return format_html('<ol class="rb-steps">{}</ol>', items)

    @admin.display(description="Review")
    def review_flag(self, obj: Runbook) -> SafeString:
        """"due" with a link to the owning group (its members are the people to ask), or when it is next due."""
        due = review_due_at(obj)
        if due is None:
            return format_html("{}", "–")
        if due > timezone.now():
            return format_html("next due {}", f"{due:%Y-%m-%d}")
        if obj.owner_group_id is None:
            return format_html("<strong>{}</strong>", "review due (no owning group)")
        return format_html(
            '<strong>review due</strong>: ask <a href="{}">{}</a>',
            reverse("admin:auth_group_change", args=[obj.owner_group_id]),
            obj.owner_group.name,
        )

    @admin.display(description="Searched", boolean=True)
    def searched(self, obj: Runbook) -> bool:
        """What search uses (runbooks.search.searchable_runbooks, RBAC aside): active and enabled."""
        return obj.status == RunbookStatus.ACTIVE and obj.enabled

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
        obj._version_before = runbook_before_admin_save(obj)
        obj.save()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        before = getattr(form.instance, "_version_before", None)
        runbook_save_from_admin(runbook=form.instance, before=before, changed_by=request.user)


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
