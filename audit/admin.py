import json
from collections import defaultdict

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from audit.details import PresentedSolution
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


def pretty_json(value) -> SafeString:
    """A JSON column indented, in a <pre> that scrolls inside its box (static/css/audit_admin.css)."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, cls=DjangoJSONEncoder)
    return format_html('<pre class="audit-json" tabindex="0">{}</pre>', text)


def _percent(value: float) -> str:
    return f"{round(value * 100)}%"


def _recommended(solution: PresentedSolution, threshold: float | None) -> str:
    return "yes" if threshold is None or solution.confidence >= threshold else "below threshold"


class ProviderFilter(admin.SimpleListFilter):
    """The LLM providers used, with answers that had none (degraded before the LLM) named in words, not an
    empty link."""

    title = "LLM provider"
    parameter_name = "llm_provider"

    def lookups(self, request, model_admin):
        providers = model_admin.get_queryset(request).order_by().values_list("llm_provider", flat=True).distinct()
        return [(value or "-", value or "None recorded") for value in sorted(providers)]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(llm_provider="" if self.value() == "-" else self.value())


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    # Few, narrow columns so the list fits beside the admin's two sidebars at 1366 px (the provider is a filter).
    list_display = ("created_at", "user", "short_query", "strategy", "clicked_of_presented", "degraded_flag")
    list_filter = ("degraded", "source", ProviderFilter)
    search_fields = ("query", "user__username")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    fieldsets = (
        ("Answer", {"fields": ("created_at", "user", "session", "source", "query", "response", "degraded", "error")}),
        ("What was presented", {"fields": ("strategy", "presented_solutions", "answer_events")}),
        ("Model", {"fields": ("llm_provider", "llm_model", "input_tokens", "output_tokens", "latency_ms")}),
        ("Stored JSON", {"fields": ("action_details_json", "user_modifications_json")}),
    )

    class Media:
        css = {"all": ("css/audit_admin.css",)}

    readonly_fields = (
        "strategy",
        "presented_solutions",
        "answer_events",
        "action_details_json",
        "user_modifications_json",
    )

    @admin.display(description="Query")
    def short_query(self, obj: AuditLog) -> str:
        return obj.query if len(obj.query) <= 60 else obj.query[:59] + "…"

    @admin.display(description="Strategy")
    def strategy(self, obj: AuditLog) -> str:
        return audit_log_details(obj).presentation_strategy.replace("_", " ") or "–"

    @admin.display(description="Clicks")
    def clicked_of_presented(self, obj: AuditLog) -> str:
        presented = len(audit_log_details(obj).solutions)
        return f"{len(obj.user_modifications.get('clicks', []))} of {presented}" if presented else "–"

    @admin.display(description="Degraded", boolean=True, ordering="degraded")
    def degraded_flag(self, obj: AuditLog) -> bool:
        return obj.degraded

    @staticmethod
    def _events_by_runbook(obj: AuditLog) -> dict[str, list[InteractionEventRow]]:
        """The events of this answer by runbook id, oldest first: one query per page, kept on the row
        object of this request (the admin instance is shared by every request)."""
        if not hasattr(obj, "_events_by_runbook"):
            grouped: dict[str, list[InteractionEventRow]] = defaultdict(list)
            for event in InteractionEventRow.objects.filter(audit_log_id=obj.pk).order_by("event_timestamp"):
                grouped[str(event.runbook_id)].append(event)
            obj._events_by_runbook = dict(grouped)
        return obj._events_by_runbook

    @admin.display(description="Solutions")
    def presented_solutions(self, obj: AuditLog) -> SafeString:
        details = audit_log_details(obj)
        if not details.solutions:
            return format_html("<p>{}</p>", "No solution was presented.")
        events = self._events_by_runbook(obj)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    solution.rank,
                    self._solution_link(solution),
                    _percent(solution.confidence),
                    _recommended(solution, details.threshold),
                    self._event_list(events.get(solution.id, [])),
                )
                for solution in details.solutions
            ),
        )
        threshold = "" if details.threshold is None else f" (threshold {_percent(details.threshold)})"
        return format_html(
            '<div class="audit-scroll" role="region" tabindex="0" aria-label="Presented solutions">'
            '<table class="audit-solutions"><thead><tr><th scope="col">Rank</th><th scope="col">Runbook</th>'
            '<th scope="col">Confidence</th><th scope="col">Recommended{}</th><th scope="col">Clicks and events</th>'
            "</tr></thead><tbody>{}</tbody></table></div>",
            threshold,
            rows,
        )

    @staticmethod
    def _solution_link(solution: PresentedSolution) -> SafeString:
        name = solution.title or solution.slug or solution.id
        if not solution.is_runbook:
            return format_html("{} ({})", name, solution.type)
        url = reverse("admin:runbooks_runbook_change", args=[solution.id])
        link = format_html('<a href="{}">{}</a><br><span class="audit-muted">{}</span>', url, name, solution.slug)
        if not solution.runbook_version:
            return format_html('{}<br><span class="audit-muted">{}</span>', link, "version not recorded")
        # By URL name: the runbooks app (a layer above audit) registers the version page in the admin.
        version_url = reverse("admin:runbooks_runbook_version", args=[solution.id, solution.runbook_version])
        return format_html(
            '{}<br><a href="{}">Version {} as presented</a>', link, version_url, solution.runbook_version
        )

    @staticmethod
    def _event_list(events: list[InteractionEventRow]) -> SafeString:
        if not events:
            return format_html('<span class="audit-muted">{}</span>', "none")
        items = format_html_join(
            "",
            '<li>{} <span class="audit-muted">{} · {}</span></li>',
            (
                (
                    event.get_event_type_display(),
                    f"{localtime(event.event_timestamp):%Y-%m-%d %H:%M:%S}",
                    event.get_source_display(),
                )
                for event in events
            ),
        )
        return format_html('<ul class="audit-events">{}</ul>', items)

    @admin.display(description="Events on other runbooks")
    def answer_events(self, obj: AuditLog) -> SafeString:
        presented = {solution.id for solution in audit_log_details(obj).solutions}
        other = [e for key, events in self._events_by_runbook(obj).items() if key not in presented for e in events]
        return self._event_list(other)

    @admin.display(description="ai_action_details")
    def action_details_json(self, obj: AuditLog) -> SafeString:
        return pretty_json(obj.ai_action_details)

    @admin.display(description="user_modifications")
    def user_modifications_json(self, obj: AuditLog) -> SafeString:
        return pretty_json(obj.user_modifications)


@admin.register(InteractionEventRow)
class InteractionEventAdmin(ReadOnlyAdmin):
    list_display = ("event_timestamp", "event_type", "runbook", "rank", "source", "user", "audit_log_id", "variant")
    list_filter = ("event_type", "source", "variant")
    search_fields = ("runbook__name", "runbook__slug", "user__username")
    date_hierarchy = "event_timestamp"
    list_select_related = ("runbook", "user")
    show_full_result_count = False
