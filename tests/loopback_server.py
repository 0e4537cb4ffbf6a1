"""An HTTP server on 127.0.0.1 for tests: each path answers with planned responses or faults, and is counted."""
from __future__ import annotations

import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "image/jpeg"
    headers: dict = field(default_factory=dict)
    delay: float = 0.0          # seconds before the status line (a slow server)
    trickle: float = 0.0        # seconds between the body's bytes (a server that never quite finishes)
    reset: bool = False         # drop the connection with a TCP reset instead of answering


class LoopbackServer:
    """`routes[path]` is a list of answers, given in turn; the last one repeats."""

    def __init__(self):
        self.routes: dict[str, list[Answer]] = {}
        self.requests: Counter = Counter()
        self.user_agents: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests[self.path] += 1
                server.user_agents.add(self.headers.get("User-Agent", ""))
                answers = server.routes.get(self.path) or [Answer(404, b"not found", "text/plain")]
                answer = answers[min(server.requests[self.path], len(answers)) - 1]
                time.sleep(answer.delay)
                if answer.reset:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                step = 1 if answer.trickle else max(1, len(answer.body))
                try:
                    for start in range(0, len(answer.body), step):
                        self.wfile.write(answer.body[start:start + step])
                        time.sleep(answer.trickle)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up first
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "LoopbackServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
