"""Fixtures for the smoke-test tests: small generated TLC-like data, written to tmp_path.

Nothing here reads ../shared: every data set is generated in the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest


@pytest.fixture
def write_parquet(tmp_path: Path) -> Callable[[pd.DataFrame, str], Path]:
    def write(df: pd.DataFrame, name: str) -> Path:
        path = tmp_path / name
        df.to_parquet(path, index=False)
        return path

    return write


class _Files:
    """What the test server serves, and what it saw."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ranges: list[str | None] = []  # the Range header of each GET (None: none)
        self.cut_next = 0  # this many next responses stop halfway (connection dropped)
        self.honour_range = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    state: _Files

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        st = self.state
        body = st.files.get(self.path)
        rng = self.headers.get("Range")
        st.ranges.append(rng)
        if body is None:
            self.send_error(404, "no such file")
            return
        start = 0
        if rng and st.honour_range:
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if st.cut_next > 0:
            st.cut_next -= 1
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def http_files() -> Iterator[tuple[str, _Files]]:
    """A local HTTP server on 127.0.0.1 with Range support; yields (base URL, state)."""
    state = _Files()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
