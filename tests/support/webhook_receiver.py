"""A webhook receiver for the alert tests, as its own process: ``python -m tests.support.webhook_receiver PORT LOG``.

Each POST is appended to LOG as one JSON line (its ``Idempotency-Key`` and body), flushed and
fsync'd before the 200 answer, so a ``kill -9`` never loses a delivery it acknowledged (the test
kills it mid-stream and starts it again on the same port).
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def serve(port: int, log: Path) -> None:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            line = json.dumps({"key": self.headers.get("idempotency-key"), "body": body.decode("utf-8")})
            with log.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
                out.flush()
                os.fsync(out.fileno())
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    with ThreadingHTTPServer(("127.0.0.1", port), Receiver) as server:
        print("listening", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))
