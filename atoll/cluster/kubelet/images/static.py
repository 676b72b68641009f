"""``atoll/static`` (and ``nginx``): serve a directory of files over HTTP.

The directory is the first argument or ``$STATIC_ROOT``; without one it serves a
default index page, as nginx's image does, so ``kubectl create deployment --image=nginx``
answers something recognisable. Listens on ``$POD_IP:$PORT``; stops cleanly on SIGTERM.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

INDEX = """<!DOCTYPE html>
<html>
<head><title>Welcome to nginx!</title></head>
<body>
<h1>Welcome to nginx!</h1>
<p>Served by Atoll's static image from pod {pod} ({namespace}) on node {node}, cluster {cluster}.</p>
</body>
</html>
"""


class Handler(SimpleHTTPRequestHandler):
    server_version = "atoll-static/1.0"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.client_address[0]} {format % args}\n")
        sys.stderr.flush()


def default_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="atoll-static-"))
    (root / "index.html").write_text(INDEX.format(
        pod=os.environ.get("POD_NAME", ""), namespace=os.environ.get("POD_NAMESPACE", ""),
        node=os.environ.get("NODE_NAME", ""), cluster=os.environ.get("ATOLL_CLUSTER", "")))
    return root


def main() -> None:
    given = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("STATIC_ROOT", "")
    root = Path(given) if given else default_root()
    host = os.environ.get("POD_IP") or "0.0.0.0"
    port = int(os.environ.get("PORT") or 8080)
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((host, port), functools.partial(Handler, directory=str(root)))

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    print(f"atoll/static serving {root} on {host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
