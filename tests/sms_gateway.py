"""A real HTTP server on 127.0.0.1 playing an SMS gateway that deduplicates by idempotency key, as the
real ones refuse repeats: a key it has delivered is answered 200 again and not delivered twice.

`plan[key]` scripts the answers to that key's successive requests (then "ok"):
- "ok": deliver, 200 {"id": ...};
- "500": 500, nothing delivered;
- "400": 400 (a bad number), nothing delivered;
- "hang": wait `hang_seconds` (longer than the sender's timeout), then deliver: the client has
  given up, as a real gateway may still send what it received;
- "hold": signal `held`, wait until `release` is set, then deliver (the test kills the sender
  meanwhile).
"""
from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeGateway:
    def __init__(self, hang_seconds: float = 3.0):
        self.hang_seconds = hang_seconds
        self.plan: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self.requests: list[dict] = []           # every request: key, headers, body, action
        self.delivered: dict[str, dict] = {}     # key -> the message, delivered once
        self.repeats: dict[str, int] = {}        # key -> requests after its delivery
        self.held, self.release = threading.Event(), threading.Event()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                gateway.handle(self, raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGateway:
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def parse(headers, raw: bytes) -> dict:
        if headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode("utf-8")).items()}
        return json.loads(raw.decode("utf-8") or "{}")

    def handle(self, request: BaseHTTPRequestHandler, raw: bytes) -> None:
        body = self.parse(request.headers, raw)
        key = request.headers.get("Idempotency-Key") or body.get("CorrelationID") or body.get("key") or ""
        with self.lock:
            steps = self.plan.get(key, [])
            action = steps.pop(0) if steps else "ok"
            self.requests.append({"key": key, "headers": dict(request.headers), "body": body, "action": action})
        if action == "500":
            return self.answer(request, 500, {"error": "try again"})
        if action == "400":
            return self.answer(request, 400, {"error": "invalid number"})
        if action == "hang":
            time.sleep(self.hang_seconds)
        if action == "hold":
            self.held.set()
            self.release.wait(60)
        with self.lock:
            if key in self.delivered:
                self.repeats[key] = self.repeats.get(key, 0) + 1
            else:
                self.delivered[key] = body
        # as a custom gateway ("id") and as Unifonic (success, errorCode, data.MessageID) answer
        self.answer(request, 200, {"id": f"gw-{key}", "success": True, "errorCode": "ER-00",
                                   "data": {"MessageID": f"gw-{key}"}})

    @staticmethod
    def answer(request: BaseHTTPRequestHandler, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
        except OSError:  # the client has gone (timed out or killed)
            pass

    def attempts(self, key: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["key"] == key)
