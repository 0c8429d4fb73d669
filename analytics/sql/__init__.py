"""The only raw SQL of the analytics app (docs/analytics.md), one module per subject: ``common`` (the
filter and the shared CTEs), ``metrics`` (the dashboard's statements), ``facts`` (the rollup rebuild,
the one writer) and ``learning`` (what update_runbook_stats reads)."""
