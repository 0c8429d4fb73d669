"""The staff dashboard inside the Django admin and its CSV export (wired in analytics/admin.py)."""

from __future__ import annotations

import csv

from django.contrib import admin
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse

from analytics.services.dashboard import Dashboard, analytics_dashboard
from analytics.services.gaps import COVERED_SIMILARITY, gap_report
from analytics.services.gaps_page import group_card
from analytics.services.health import runbook_health
from analytics.services.page import dashboard_page
from analytics.services.parameters import (
    FILTER_PARAMETERS,
    DashboardParameters,
    InvalidParameters,
    analytics_parameters_parse,
)
from analytics.services.presentation import dashboard_charts, dashboard_tables

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A cell a spreadsheet will not run: text starting like a formula (a runbook named '=HYPERLINK(...)')
    gets a leading apostrophe (OWASP "CSV injection"); numbers, negative ones included, are left alone."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


def _dashboard(request, parameters: DashboardParameters) -> Dashboard:
    return analytics_dashboard(
        user=request.user,
        start=parameters.start,
        end=parameters.end,
        source=parameters.source,
        strategy=parameters.strategy,
        experiment=parameters.experiment,
        variant=parameters.variant,
    )


def dashboard_view(request):
    """Invalid parameters: 400, the errors in words above the default range (last 30 days, no filters)."""
    try:
        parameters, error = analytics_parameters_parse(query=request.GET), ""
    except InvalidParameters as exc:
        parameters, error = analytics_parameters_parse(query={}), exc.message
    dashboard = _dashboard(request, parameters)
    # The form shows the range as dates: end is exclusive, so the last day shown is the day before.
    last_day = (dashboard.end.astimezone(dashboard.start.tzinfo) - dashboard.end.resolution).date()
    context = {
        **admin.site.each_context(request),
        "title": "Analytics",
        "dashboard": dashboard,
        "error": error,
        "form_start": dashboard.start.date().isoformat(),
        "form_end": last_day.isoformat(),
        # What the page shows, so an invalid value is not echoed back into the form.
        "filters": {name: getattr(parameters, name) or "" for name in FILTER_PARAMETERS},
        "page": dashboard_page(dashboard),
        "charts": dashboard_charts(dashboard),
        "querystring": request.GET.urlencode() if not error else "",
    }
    return TemplateResponse(request, "admin/analytics/dashboard.html", context, status=400 if error else 200)


def export_csv_view(request, table: str):
    """Invalid parameters: 400 in words, never a file of some other range than the one asked for."""
    try:
        parameters = analytics_parameters_parse(query=request.GET)
    except InvalidParameters as exc:
        return HttpResponseBadRequest(f"No export: {exc.message}", content_type="text/plain; charset=utf-8")
    dashboard = _dashboard(request, parameters)
    tables = dashboard_tables(dashboard)
    if table not in tables:
        raise Http404(f"No table {table!r}; choose one of {', '.join(tables)}.")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="analytics-{table}-{dashboard.start:%Y%m%d}-{dashboard.end:%Y%m%d}.csv"'
    )
    writer = csv.writer(response)
    writer.writerow([csv_cell(cell) for cell in tables[table].headers])
    writer.writerows([csv_cell(cell) for cell in row] for row in tables[table].rows)
    return response


def gaps_view(request):
    """Admin -> Analytics -> Gaps: the knowledge-gap groups and the runbook health of a range (staff only,
    through admin_view). Invalid parameters: 400, the errors in words above the last 30 days."""
    try:
        parameters, error = analytics_parameters_parse(query=request.GET), ""
    except InvalidParameters as exc:
        parameters, error = analytics_parameters_parse(query={}), exc.message
    start, end = parameters.start, parameters.end
    report = gap_report(user=request.user, start=start, end=end)
    context = {
        **admin.site.each_context(request),
        "title": "Knowledge gaps",
        "error": error,
        "report": report,
        "cards": [group_card(group, start=start, end=end) for group in report.groups],
        "health": runbook_health(user=request.user, start=start, end=end),
        "covered_similarity": COVERED_SIMILARITY,
        "form_start": start.date().isoformat(),
        "form_end": (end.astimezone(start.tzinfo) - end.resolution).date().isoformat(),
        # The exact range of this report (end exclusive), so "Draft a runbook" rebuilds the same groups.
        "range_start": start.isoformat(),
        "range_end": end.isoformat(),
        "drafted": request.GET.get("drafted", ""),
    }
    return TemplateResponse(request, "admin/analytics/gaps.html", context, status=400 if error else 200)
