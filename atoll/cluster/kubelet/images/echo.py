"""``atoll/echo``: an HTTP server answering every path with JSON describing the pod that served it.

It tells which pod, node, cluster and image version answered — what a demo of
load-balancing, failover or a rollout needs to see. ``/healthz`` answers ``ok``.
Listens on ``$POD_IP:$PORT`` (default ``0.0.0.0:8080``). On SIGTERM it behaves as a
well-kept service behind a Kubernetes Service should: it keeps serving for
``$SHUTDOWN_DELAY`` seconds (default 2) while its endpoint is taken out of rotation,
then stops accepting, finishes the requests in flight and exits — so a rolling update
loses no request. Only the standard library, so it starts in tens of milliseconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any


def describe(path: str, method: str, headers: dict[str, str]) -> dict[str, Any]:
    image = os.environ.get("ATOLL_IMAGE", "atoll/echo")
    last = image.rpartition("/")[2]
    tag = last.partition(":")[2] or "latest"
    return {"pod": os.environ.get("POD_NAME", socket.gethostname()), "namespace": os.environ.get("POD_NAMESPACE", ""),
            "node": os.environ.get("NODE_NAME", ""), "cluster": os.environ.get("ATOLL_CLUSTER", ""),
            "podIP": os.environ.get("POD_IP", ""), "image": image, "tag": tag, "method": method, "path": path,
            "headers": headers}


STOPPING = threading.Event()
"""Set on SIGTERM: answers then close their connection, so keep-alive clients move on."""


class Handler(BaseHTTPRequestHandler):
    server_version = "atoll-echo/1.0"
    protocol_version = "HTTP/1.1"
    timeout = 5.0  # idle keep-alive connections end, so shutdown never waits on them for long

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/healthz":
            body, ctype = b"ok\n", "text/plain"
        else:
            body = json.dumps(describe(self.path, method, dict(self.headers.items()))).encode() + b"\n"
            ctype = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if STOPPING.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_HEAD(self) -> None:
        self._answer("HEAD")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.client_address[0]} {format % args}\n")
        sys.stderr.flush()


def main() -> None:
    host = os.environ.get("POD_IP") or "0.0.0.0"
    port = int(os.environ.get("PORT") or 8080)
    delay = float(os.environ.get("SHUTDOWN_DELAY") or 2.0)
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = False
    ThreadingHTTPServer.block_on_close = True  # server_close() waits for requests in flight
    server = ThreadingHTTPServer((host, port), Handler)

    def drain_then_stop() -> None:
        time.sleep(delay)
        server.shutdown()

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        STOPPING.set()
        threading.Thread(target=drain_then_stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    print(f"atoll/echo listening on {host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    print("atoll/echo stopped", flush=True)


if __name__ == "__main__":
    main()
