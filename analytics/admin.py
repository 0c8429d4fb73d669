from django.contrib import admin
from django.urls import path, reverse
from django.utils.html import format_html

from analytics.models import Experiment, RunbookStats, StatsRun
from analytics.views import dashboard_view, export_csv_view, gaps_view


def _analytics_urls(get_urls):
    """Prepend the dashboard to the admin's URLs, behind admin_view (active staff only)."""

    def urls():
        return [
            path("analytics/dashboard/", admin.site.admin_view(dashboard_view), name="analytics_dashboard"),
            path("analytics/gaps/", admin.site.admin_view(gaps_view), name="analytics_gaps"),
            path(
                "analytics/dashboard/<slug:table>.csv",
                admin.site.admin_view(export_csv_view),
                name="analytics_dashboard_csv",
            ),
            *get_urls(),
        ]

    return urls


admin.site.get_urls = _analytics_urls(admin.site.get_urls)


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["key", "starts_at", "ends_at", "variant_keys"]
    search_fields = ["key", "description"]

    @admin.display(description="variants")
    def variant_keys(self, obj) -> str:
        return ", ".join(f"{v.get('key')} ({v.get('weight')})" for v in obj.variants if isinstance(v, dict))


class StaleFilter(admin.SimpleListFilter):
    title = "stale reason"
    parameter_name = "stale"
    REASONS = {
        "any": ("Any reason", None),
        "low_ctr": ("Low click-through at rank 1", "low click-through"),
        "failures": ("High failure rate", "high failure rate"),
        "no_views": ("No clicks or views", "no clicks or views"),
        "fresh": ("Not stale", None),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.REASONS.items()]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "any":
            return queryset.exclude(stale_reason="")
        if value == "fresh":
            return queryset.filter(stale_reason="")
        if value in self.REASONS:
            return queryset.filter(stale_reason__icontains=self.REASONS[value][1])
        return queryset


@admin.register(RunbookStats)
class RunbookStatsAdmin(admin.ModelAdmin):
    list_display = [
        "runbook_link",
        "impressions",
        "clicks",
        "ctr",
        "debiased_ctr",
        "feedback_score",
        "succeeded",
        "failed",
        "smoothed_success",
        "last_interaction_at",
        "stale_reason",
        "computed_at",
    ]
    list_filter = [StaleFilter]
    search_fields = ["runbook__slug", "runbook__name"]
    list_select_related = ["runbook"]

    @admin.display(description="runbook", ordering="runbook__slug")
    def runbook_link(self, obj) -> str:
        url = reverse("admin:runbooks_runbook_change", args=[obj.runbook_id])
        return format_html('<a href="{}">{}</a>', url, obj.runbook.slug)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StatsRun)
class StatsRunAdmin(admin.ModelAdmin):
    list_display = ["computed_at", "runbooks", "event_count", "execution_count", "max_event_timestamp"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
