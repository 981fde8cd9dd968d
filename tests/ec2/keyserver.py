"""A fake GitHub ``USER.keys`` endpoint (STAND-IN for https://github.com/USER.keys): a real
HTTP server on 127.0.0.1 serving ``{user: text}``; unknown users get 404 as on GitHub."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def key_server(users: dict[str, str], redirect: str | None = None) -> Iterator[tuple[str, list[str]]]:
    """Yields (base URL, paths requested)."""
    seen: list[str] = []

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            if redirect:
                self.send_response(302)
                self.send_header("Location", redirect)
                self.end_headers()
                return
            user = self.path.lstrip("/").removesuffix(".keys")
            if not self.path.endswith(".keys") or user not in users:
                self.send_response(404)
                self.end_headers()
                self.wfile.write(b"Not Found")
                return
            body = users[user].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()
