"""Locust user for the load benchmarks (tracking_load.py, reliability_load.py start it; not run by hand).

    locust -f benchmarks/loadgen.py --headless ...   with LOADGEN_SCENARIO=<json> LOADGEN_OUT=<json>

The scenario file says which endpoint to hit and gives each simulated user its token and its own
audit logs / runbooks. Every request is timed here and its outcome kept, so the harness computes exact
percentiles and checks every acknowledged write against the database (locust's own statistics round
response times and do not keep response bodies). Closed loop by default (no think time: each user sends
its next request when the previous one has answered); with ``rate_per_user`` each user offers a fixed
rate. Bounded: ``max_requests_per_user`` and locust's --run-time.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from datetime import UTC, datetime

import gevent
from locust import FastHttpUser, events, task
from locust.exception import StopUser

SCENARIO = json.loads(open(os.environ["LOADGEN_SCENARIO"], encoding="utf-8").read())  # noqa: SIM115
OUT = os.environ["LOADGEN_OUT"]
KIND = SCENARIO["kind"]
MAX_REQUESTS = int(SCENARIO.get("max_requests_per_user", 100_000))
CLICKS_PER_LOG = int(SCENARIO.get("clicks_per_log", 4))
EVENTS_PER_BATCH = int(SCENARIO.get("events_per_batch", 10))
EVENT_TYPES = ("viewed_detail", "clicked_link", "viewed_detail", "feedback_positive")

RESULTS = {"latencies_ms": [], "status": {}, "accepted_ids": [], "chat": [], "errors": [], "start": None, "end": None}
_slots = itertools.count()


def _record(started: float, status: int, error: str | None) -> None:
    ended = time.time()
    RESULTS["latencies_ms"].append((ended - started) * 1000.0)
    key = str(status)
    RESULTS["status"][key] = RESULTS["status"].get(key, 0) + 1
    RESULTS["start"] = started if RESULTS["start"] is None else min(RESULTS["start"], started)
    RESULTS["end"] = ended if RESULTS["end"] is None else max(RESULTS["end"], ended)
    if error and len(RESULTS["errors"]) < 20:
        RESULTS["errors"].append(f"{status}: {error[:300]}")


@events.quitting.add_listener
def _write_results(environment, **kwargs) -> None:
    with open(OUT, "w", encoding="utf-8") as handle:
        json.dump(RESULTS, handle)


# Open loop (``rate_per_user`` set): each user offers a fixed mean request rate, so latency is measured
# below capacity instead of being the queueing time of a saturated closed loop. Arrivals are Poisson:
# exponential gaps between request *starts*, drawn independently per user from a random first arrival.
# (constant_throughput with every user spawned at once keeps the users in phase: all of them fire
# together every 1/rate seconds: bursts of 16 or 32 requests at once.)
RATE_PER_USER = float(SCENARIO.get("rate_per_user") or 0)


class BenchUser(FastHttpUser):
    network_timeout = 30.0
    connection_timeout = 10.0

    def wait_time(self) -> float:
        if not RATE_PER_USER:
            return 0.0
        # A user that fell behind (a slow answer) sends at once until it has caught up: the offered
        # rate is kept, as an open loop would.
        self.next_start += random.expovariate(RATE_PER_USER)
        return max(0.0, self.next_start - time.monotonic())

    def on_start(self) -> None:
        self.next_start = time.monotonic()
        if RATE_PER_USER:
            gevent.sleep(random.expovariate(RATE_PER_USER))  # a random first arrival
            self.next_start = time.monotonic()
        self.slot = next(_slots)
        self.data = SCENARIO["users"][self.slot % len(SCENARIO["users"])]
        self.headers = {"Authorization": f"Token {self.data['token']}", "Content-Type": "application/json"}
        self.sent = 0
        self.clicks = 0
        # Users sharing one user's data (contention mode) start at different solutions.
        self.offset = self.slot

    def _post(self, path: str, body: dict):
        # Open loop: latency counts from the request's scheduled arrival, not from when this user could
        # send it (after a slow answer it goes out late; leaving that out is "coordinated omission").
        lag = max(0.0, time.monotonic() - self.next_start) if RATE_PER_USER else 0.0
        started = time.time() - lag
        with self.client.post(path, data=json.dumps(body), headers=self.headers, catch_response=True) as response:
            status = response.status_code or 0
            error = None
            parsed = None
            if status in (200, 201):
                try:
                    parsed = response.json()
                except ValueError:
                    error = "unparsable body"
                response.success()
            else:
                error = str(response.error or response.text or "")
                response.failure(error[:200] or f"HTTP {status}")
            _record(started, status, error)
            return status, parsed

    @task
    def step(self) -> None:
        if self.sent >= MAX_REQUESTS:
            raise StopUser()
        self.sent += 1
        getattr(self, f"_{KIND}")()

    def _baseline(self) -> None:
        status, body = self._post("/bench/baseline", {})
        if status == 201 and body:
            RESULTS["accepted_ids"].append(body["id"])

    def _track(self) -> None:
        logs = self.data["audit_logs"]
        log = logs[(self.clicks // CLICKS_PER_LOG) % len(logs)]
        solution = log["solutions"][(self.clicks + self.offset) % len(log["solutions"])]
        self.clicks += 1
        event_id = str(uuid.uuid4())
        body = {
            "audit_log_id": log["id"],
            "event_id": event_id,
            "source": "chat_page",
            "choice_data": {
                "solution_chosen_id": solution["id"],
                "solution_chosen_type": "runbook",
                "user_action": "clicked_link",
                "solution_chosen_rank": solution["rank"],
            },
        }
        status, _ = self._post("/api/ai-helper/track-choice", body)
        if status == 201:
            RESULTS["accepted_ids"].append(event_id)

    def _events(self) -> None:
        logs = self.data["audit_logs"]
        now = datetime.now(UTC).isoformat()
        batch = []
        for i in range(EVENTS_PER_BATCH):
            log = logs[(self.clicks + i) % len(logs)]
            solution = log["solutions"][i % len(log["solutions"])]
            batch.append(
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": EVENT_TYPES[i % len(EVENT_TYPES)],
                    "runbook_id": solution["id"],
                    "audit_log_id": log["id"],
                    "session_id": log["session_id"],
                    "rank": solution["rank"],
                    "source": "search_page",
                    "client_timestamp": now,
                    "page_context": {"path": "/runbooks/"},
                }
            )
        self.clicks += EVENTS_PER_BATCH
        status, body = self._post("/api/ai-helper/events", {"events": batch})
        if status == 201 and body:
            RESULTS["accepted_ids"].extend(body.get("accepted", []))
            if body.get("rejected") and len(RESULTS["errors"]) < 20:
                RESULTS["errors"].append(f"rejected: {json.dumps(body['rejected'])[:300]}")

    def _chat(self) -> None:
        queries = SCENARIO["queries"]
        message = f"{queries[(self.slot + self.sent) % len(queries)]} (case {self.slot}-{self.sent})"
        status, body = self._post("/api/ai-helper/query", {"message": message})
        if status == 200 and body:
            RESULTS["chat"].append({"audit_log_id": body["audit_log_id"], "solutions": len(body["solutions"])})
