"""A fake Anthropic Messages API on 127.0.0.1 for the real SDK to talk to (ANTHROPIC_BASE_URL).

It records every request and answers according to ``mode``: "stream" (SSE, or JSON when the
request does not ask for a stream), "429", "500", "529", "garbage" or "timeout" (sleeps past the
client's timeout). ``modes`` is an optional queue used first, one entry per request.

``delta_delay`` (seconds between deltas) and ``deltas`` (how many) make a stream answer like a real model,
for the concurrency benchmark and the cancellation tests; ``disconnects`` counts streams whose client went
away before the end. Standalone: ``python tests/fake_anthropic.py --port 8100 --delta-delay 0.05``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERRORS = {
    "429": (429, "rate_limit_error"),
    "500": (500, "api_error"),
    "529": (529, "overloaded_error"),
}


class FakeAnthropic:
    def __init__(self, *, text: str = "Hello from the fake model.", sleep: float = 2.0, delta_delay: float = 0.0,
                 deltas: int = 3, port: int = 0, record: bool = True) -> None:
        self.text = text
        self.sleep = sleep
        self.delta_delay = delta_delay
        self.deltas = deltas
        self.record = record
        self.mode = "stream"
        self.modes: list[str] = []
        self.requests: list[dict] = []
        self.disconnects = 0
        self.completed = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.request_queue_size = 256
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_mode(self) -> str:
        return self.modes.pop(0) if self.modes else self.mode

    def chunks(self) -> list[str]:
        """The text split in ``deltas`` deltas (or fewer), so the client has to join a real stream."""
        words = self.text.split(" ")
        size = max(1, len(words) // max(1, self.deltas))
        parts = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
        return [part + (" " if index < len(parts) - 1 else "") for index, part in enumerate(parts)]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json", headers=None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                if fake.record:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "json": body})
                mode = fake.next_mode()
                if mode in ERRORS:
                    status, kind = ERRORS[mode]
                    payload = {"type": "error", "error": {"type": kind, "message": f"fake {status}"}}
                    # Retry quickly: the SDK honours retry-after-ms.
                    self._send(status, json.dumps(payload).encode(), headers={"retry-after-ms": "10"})
                    return
                if mode == "timeout":
                    time.sleep(fake.sleep)
                    try:
                        self._send(200, b"{}")
                    except OSError:
                        pass
                    return
                if mode == "garbage":
                    stream = bool(body and body.get("stream"))
                    content_type = "text/event-stream" if stream else "application/json"
                    self._send(200, b"this is not { an answer", content_type)
                    return
                if body and body.get("stream"):
                    self._stream(body)
                else:
                    self._send(200, json.dumps(fake.message(body)).encode())

            def _stream(self, body: dict) -> None:
                message = fake.message(body)
                start = dict(message, content=[], stop_reason=None, usage={"input_tokens": 42, "output_tokens": 1})
                events = [
                    ("message_start", {"type": "message_start", "message": start}),
                    ("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}}),
                ]
                events += [
                    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": chunk}})
                    for chunk in fake.chunks()
                ]
                events += [
                    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                       "stop_sequence": None}, "usage": {"output_tokens": 17}}),
                    ("message_stop", {"type": "message_stop"}),
                ]
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for name, data in events:
                        if name == "content_block_delta" and fake.delta_delay:
                            time.sleep(fake.delta_delay)
                        self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                        self.wfile.flush()
                except OSError:  # the client went away mid-answer
                    fake.disconnects += 1
                else:
                    fake.completed += 1
                self.close_connection = True

        return Handler

    def message(self, body: dict | None) -> dict:
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": (body or {}).get("model", "fake-model"),
            "content": [{"type": "text", "text": self.text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 42, "output_tokens": 17},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake Anthropic Messages API on 127.0.0.1 (streams only).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delta-delay", type=float, default=0.05, help="seconds between text deltas")
    parser.add_argument("--deltas", type=int, default=100, help="text deltas per answer")
    args = parser.parse_args()
    text = " ".join(f"word{i}" for i in range(args.deltas))
    fake = FakeAnthropic(text=text, delta_delay=args.delta_delay, deltas=args.deltas, port=args.port, record=False)
    fake.start()
    print(fake.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
