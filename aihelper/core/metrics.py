"""Prometheus metrics: the one place they are defined, plus the middleware that times every request.

Under gunicorn every worker is a process of its own: with ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py
sets it) prometheus-client keeps each worker's values in files there and ``/metrics`` (aihelper/ops/metrics.py)
adds them up; gauges of things in flight are summed over the live workers only. Without it (tests, the
development server) the values live in this process.

Labels are bounded sets (route patterns, never paths with ids; strategies; reasons as short kinds).
"""

from __future__ import annotations

import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LLM_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0)

HTTP_REQUEST_SECONDS = Histogram(
    "aihelper_http_request_duration_seconds",
    "Time to the response (for a streamed answer: to its first byte), by route pattern.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
LLM_IN_FLIGHT = Gauge(
    "aihelper_llm_calls_in_flight", "LLM calls running now (summed over live workers).", multiprocess_mode="livesum"
)
LLM_QUEUE_DEPTH = Gauge(
    "aihelper_llm_queue_depth", "Answers waiting for an LLM slot (summed over live workers).",
    multiprocess_mode="livesum",
)
LLM_CALL_SECONDS = Histogram(
    "aihelper_llm_call_duration_seconds",
    "Duration of LLM calls by outcome: ok, error or cancelled (the client went away).",
    ["provider", "outcome"],
    buckets=LLM_BUCKETS,
)
LLM_ERRORS = Counter(
    "aihelper_llm_errors_total", "LLM calls that failed after the SDK's retries, by kind.", ["provider", "kind"]
)
LLM_CAP_REJECTIONS = Counter(
    "aihelper_llm_cap_rejections_total",
    "Answers that got the busy answer: cap (no slot in time), queue_full or user_cap.",
    ["kind"],
)
ANSWERS = Counter(
    "aihelper_answers_total",
    "Recorded answers by presentation strategy and degraded reason (none when not degraded).",
    ["strategy", "degraded_reason"],
)
CLICKS_RECORDED = Counter("aihelper_clicks_recorded_total", "Accepted POST /api/ai-helper/track-choice calls.")
EVENTS_ACCEPTED = Counter(
    "aihelper_events_accepted_total", "Interaction events accepted by POST /api/ai-helper/events (stored or duplicate)."
)

# URL names whose successful answers count as tracking writes (aihelper/chat/urls.py).
CLICK_ROUTE_NAME = "track-choice"
EVENTS_ROUTE_NAME = "event-ingest"


def error_kind(reason: str) -> str:
    """A short, bounded label from an ``LLMError`` reason such as "http 529: OverloadedError"."""
    head = reason.split(":", 1)[0].strip().lower()
    return head.replace(" ", "_")[:32] or "unknown"


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "static" if request.path_info.startswith("/static/") else "unmatched"
    return "/" + match.route if match.route else match.view_name


def _record(request, response, started: float) -> None:
    status = response.status_code
    HTTP_REQUEST_SECONDS.labels(route=_route(request), method=request.method, status=str(status)).observe(
        time.perf_counter() - started
    )
    match = getattr(request, "resolver_match", None)
    if match is None or status >= 300:
        return
    if match.url_name == CLICK_ROUTE_NAME:
        CLICKS_RECORDED.inc()
    elif match.url_name == EVENTS_ROUTE_NAME:
        data = getattr(response, "data", None)
        accepted = data.get("accepted") if isinstance(data, dict) else None
        EVENTS_ACCEPTED.inc(len(accepted or ()))


class RequestMetricsMiddleware:
    """Request latency by route; sync and async, so it never moves an async view onto a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        _record(request, response, started)
        return response

    async def _acall(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        _record(request, response, started)
        return response
