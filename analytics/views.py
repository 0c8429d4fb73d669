"""The staff dashboard inside the Django admin and its CSV export (wired in analytics/admin.py)."""

from __future__ import annotations

import csv

from django.contrib import admin
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse

from analytics.services.dashboard import analytics_dashboard
from analytics.services.presentation import dashboard_charts, dashboard_tables
from analytics.services.ranges import InvalidRange, analytics_range_parse

FILTER_PARAMS = ("source", "strategy", "experiment", "variant")
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


def _dashboard_for(request):
    """(dashboard, error message): an invalid range falls back to the default range, with the reason."""
    error = ""
    try:
        start, end = analytics_range_parse(start=request.GET.get("start"), end=request.GET.get("end"))
    except InvalidRange as exc:
        error = exc.message
        start, end = analytics_range_parse(start=None, end=None)
    options = {name: request.GET.get(name, "").strip()[:100] or None for name in FILTER_PARAMS}
    return analytics_dashboard(user=request.user, start=start, end=end, **options), error


def dashboard_view(request):
    dashboard, error = _dashboard_for(request)
    # The form shows the range as dates: end is exclusive, so the last day shown is the day before.
    last_day = (dashboard.end.astimezone(dashboard.start.tzinfo) - dashboard.end.resolution).date()
    context = {
        **admin.site.each_context(request),
        "title": "Analytics",
        "dashboard": dashboard,
        "error": error,
        "form_start": dashboard.start.date().isoformat(),
        "form_end": last_day.isoformat(),
        "filters": {name: request.GET.get(name, "") for name in FILTER_PARAMS},
        "tables": list(dashboard_tables(dashboard).values()),
        "charts": dashboard_charts(dashboard),
        "querystring": request.GET.urlencode(),
    }
    return TemplateResponse(request, "admin/analytics/dashboard.html", context)


def export_csv_view(request, table: str):
    dashboard, _ = _dashboard_for(request)
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
