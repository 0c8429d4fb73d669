"""What a procrastinate worker needs from the project infrastructure (docs/alerts.md, "Task queue").

The web process defers jobs through Django's own connection (procrastinate's Django connector: a job is
written in the same transaction as the rows it is about). A worker needs an async psycopg pool; its
connection parameters are read from a live Django connection, so the embedded PostgreSQL is started (or
attached to) the same way as for any other process, and ``DATABASE_URL`` works unchanged.
"""

from django.conf import settings
from django.db import close_old_connections, connections
from procrastinate import psycopg_connector


def worker_connector(alias: str = "default") -> psycopg_connector.PsycopgConnector:
    """A pooled async connector to the database Django uses (started if it is the embedded one)."""
    wrapper = connections[alias]
    wrapper.ensure_connection()
    info = wrapper.connection.info
    params = wrapper.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    # The live connection knows where the server really is (the embedded server's socket directory).
    params.update(host=info.host, port=info.port, dbname=info.dbname, user=info.user)
    wrapper.close()
    return psycopg_connector.PsycopgConnector(
        kwargs=params,
        min_size=1,
        max_size=settings.WORKER_DB_POOL_SIZE,
    )


def django_connections_middleware(call_next, context, worker):
    """Sync task middleware: a task runs in a thread of the event loop's pool, which the worker does not own;
    the thread's Django connections are closed when the task ends, so none outlives the worker (or holds a
    test database open)."""
    close_old_connections()
    try:
        return call_next()
    finally:
        connections.close_all()
