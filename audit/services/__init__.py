"""The only writers of the audit app, one module per subject; callers import from the subject's module.

- ``store``: audit logs and interaction events (append-only), and the one purge of verification runs
- ``partitions``: monthly partitions of the event store
- ``tracking``: clicks on presented solutions and feedback on whole answers
- ``ingest``: events reported by clients, and runbook pages opened from an answer
"""
