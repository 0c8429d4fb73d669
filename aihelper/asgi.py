"""The production entry point (gunicorn with uvicorn workers, gunicorn.conf.py): Django behind the body limit."""

import os

from django.core.asgi import get_asgi_application
from django.core.signals import request_started
from django.db import close_old_connections, reset_queries

from aihelper.core.async_http import BodyLimitASGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aihelper.settings")
application = BodyLimitASGI(get_asgi_application())
# When a request starts, Django closes unusable or expired connections and clears the connections' query logs
# (DEBUG). Under ASGI a request's synchronous code runs on a thread created for that request (asgiref's
# ThreadSensitiveContext) and its connections live in that request's context, so at the start there is nothing
# to close or clear: the two receivers' only effect was a thread started for every request, /healthz included,
# before it could be answered. The end of the request (request_finished, on the request's own thread) still
# closes what the request opened.
request_started.disconnect(close_old_connections)
request_started.disconnect(reset_queries)
