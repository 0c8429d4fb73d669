"""What a procrastinate worker needs from the project infrastructure (docs/operations.md, "Task queue and workers").

The web process defers jobs through Django's own connection (procrastinate's Django connector: a job is
written in the same transaction as the rows it is about). A worker needs an async psycopg pool; its
connection parameters are read from a live Django connection, so the embedded PostgreSQL is started (or
attached to) the same way as for any other process, and ``DATABASE_URL`` works unchanged.
"""

import threading

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


_job_connections: set = set()
_job_connections_lock = threading.Lock()


def django_connections_middleware(call_next, context, worker):
    """Sync task middleware: a task runs in a thread of the event loop's pool. Like a request, it starts and
    ends without a connection that is broken or past CONN_MAX_AGE; one that is fine is kept for the thread's
    next job (a new connection per job cost ~11 ms of a ~60 ms recommendation), and remembered so the worker
    can close it when it stops (``job_connections_close``)."""
    close_old_connections()
    try:
        return call_next()
    finally:
        close_old_connections()
        with _job_connections_lock:
            _job_connections.update(connections.all(initialized_only=True))


def job_connections_close() -> None:
    """Close the connections job threads kept. Called when the worker has stopped: the threads that opened
    them belong to the event loop's executor, which is gone, so they are closed at the driver level."""
    with _job_connections_lock:
        wrappers = list(_job_connections)
        _job_connections.clear()
    for wrapper in wrappers:
        raw = wrapper.connection
        if raw is not None:
            raw.close()
            wrapper.connection = None
