"""The analytics services, one module per subject: ``parameters`` (every query parameter of the dashboard,
its CSVs and the API), ``ranges`` (user-supplied time ranges),
``experiments``, ``facts`` (the rollup refresh), ``dashboard`` (every metric for a reader),
``presentation`` (the dashboard as JSON, tables and chart series) and ``learning`` (update_runbook_stats).
Callers import from the subject module; this package re-exports nothing."""
