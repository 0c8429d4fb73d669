"""Django's own middleware, run in the event loop under ASGI instead of one thread hop per hook.

Django's ``MiddlewareMixin`` runs every hook of a middleware on a thread under ASGI (``sync_to_async``). With
the chain in settings.MIDDLEWARE that was 17 crossings from the event loop to a thread and back for every
request: a ``/healthz`` took 7 ms with nothing else running, and under load each crossing waits for the GIL
behind the answers being retrieved (docs/benchmarks.md, "LLM concurrency"). These hooks do no I/O: they set
headers, read cookies, install lazy objects. So here they run in the loop, and the two that may reach the
database cross to the request's thread only when they will:

* the session's ``process_response`` when the session was modified (the save);
* the messages' ``process_response`` when messages were read or added (they may be stored in the session).

Under WSGI (``make run``, Django's test client) nothing changes: ``MiddlewareMixin.__call__`` runs the hooks
directly, as before. A hook that reached the ORM in the loop would raise Django's ``SynchronousOnlyOperation``
instead of blocking the loop; tests/core/test_loop_middleware.py drives the whole chain under ASGI (logins,
messages, CSRF refusals, sessions) to keep it that way.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from csp import middleware as csp
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.middleware import clickjacking, common, csrf, security
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils.deprecation import MiddlewareMixin
from django.views import csrf as csrf_views

from aihelper.core import body_limits
from aihelper.core import middleware as ours


def _in_loop(hook):
    """``hook`` (a synchronous method that does no I/O) as a coroutine function, so Django's handler calls it
    in the event loop instead of adapting it onto a thread."""

    async def run(*args, **kwargs):
        return hook(*args, **kwargs)

    return run


class LoopHooks:
    """Mixin for a ``MiddlewareMixin`` subclass whose hooks do no I/O: under ASGI they run in the event loop."""

    def __init__(self, get_response) -> None:
        super().__init__(get_response)
        self.in_loop = self.runs_in_loop()  # decided once, like the middleware chain itself
        if self.async_mode and self.in_loop and hasattr(self, "process_view"):
            self.process_view = _in_loop(self.process_view)

    def runs_in_loop(self) -> bool:
        """False when a setting makes the hooks reach the database: then they hop like Django's own."""
        return True

    def response_needs_thread(self, request, response) -> bool:
        """Whether this request's ``process_response`` may do I/O (then it runs on the request's thread)."""
        return False

    async def __acall__(self, request):
        if not self.in_loop:
            return await MiddlewareMixin.__acall__(self, request)
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request, response):
                response = await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
            else:
                response = self.process_response(request, response)
        return response


class SecurityMiddleware(LoopHooks, security.SecurityMiddleware):
    pass


class CommonMiddleware(LoopHooks, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(LoopHooks, csrf.CsrfViewMiddleware):
    """With the secret in a cookie (Django's default) and Django's failure view rendering its built-in page, no
    hook reaches the database. A project ``403_csrf.html`` would be rendered with the request (its context
    processors load the user), and a custom failure view may do anything: then the hooks cross to a thread. Ours
    (``api_errors.csrf_failure``: a JSON body, or Django's page) reads only the request's headers."""

    FAILURE_VIEWS_WITHOUT_IO = ("django.views.csrf.csrf_failure", "aihelper.core.api_errors.csrf_failure")

    def runs_in_loop(self) -> bool:
        if settings.CSRF_USE_SESSIONS or settings.CSRF_FAILURE_VIEW not in self.FAILURE_VIEWS_WITHOUT_IO:
            return False
        try:
            get_template(csrf_views.CSRF_FAILURE_TEMPLATE_NAME)
        except TemplateDoesNotExist:
            return True
        return False


class AuthenticationMiddleware(LoopHooks, auth.AuthenticationMiddleware):
    """Installs the lazy ``request.user``; it is loaded later, on the request's thread, by whatever reads it."""


class MessageMiddleware(LoopHooks, messages.MessageMiddleware):
    def response_needs_thread(self, request, response) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class XFrameOptionsMiddleware(LoopHooks, clickjacking.XFrameOptionsMiddleware):
    pass


class CSPMiddleware(LoopHooks, csp.CSPMiddleware):
    pass


class SessionMiddleware(LoopHooks, ours.SessionMiddleware):
    """Creating the lazy session store reads nothing; only a save (after the view) reaches the database."""

    def response_needs_thread(self, request, response) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class BodyLimitMiddleware(LoopHooks, body_limits.BodyLimitMiddleware):
    """Under ASGI the body it may read is already in memory (``BodyLimitASGI`` stops at the limit)."""

