#!/usr/bin/env python3
"""The ride-duration model as a web service: standard library only (no pip in the image).

``mlops-env smoke-test NAME --serve`` copies this file and the exported ``model.json`` into a
generated Docker build context on the box. It must stay self-contained (no ``mlops_env``
import) and run on Python 3.8+ (the base image's python3)::

    python3 serve_app.py --model model.json [--host 0.0.0.0] [--port 9696]

    GET  /health   -> 200 {"status": "ok", "model": HASH}
    POST /predict  {"PULocationID": 43, "DOLocationID": 151, "trip_distance": 1.01}
                   -> 200 {"duration": MINUTES, "model": HASH}

Bad requests get a JSON error ``{"error": CODE, "message": TEXT}``: 400 bad JSON, not an
object, a missing or ill-typed field; 404 unknown path; 405 wrong method; 411 no
Content-Length; 413 a body over 64 KiB. Labels follow the training encoding (ridetrain.py):
IDs 132, 132.0 and "132" are the label "132", null is "nan", an unseen label contributes 0.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 64 * 1024
MODEL_FORMAT = "mlops-env/ride-duration-linear/1"


class BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def label_of(value: Any) -> str:
    """ridetrain's ``_label_of`` for JSON values (None is a missing ID: "nan")."""
    if value is None:
        return "nan"
    if isinstance(value, str):
        return value
    try:
        f = float(value)
    except OverflowError:  # an int too big for a float
        return str(value)
    if math.isnan(f):
        return "nan"
    if f.is_integer():
        return str(int(f))
    return str(value)


class Model:
    """The JSON model: intercept + a coefficient per categorical label / numeric feature."""

    def __init__(self, doc: dict[str, Any]) -> None:
        if doc.get("format") != MODEL_FORMAT:
            raise ValueError(f"not a {MODEL_FORMAT} model (format {doc.get('format')!r})")
        self.hash = str(doc["hash"])
        self.intercept = float(doc["intercept"])
        self.inputs = [str(c) for c in doc["inputs"]]
        self.numeric = set()
        self.terms: list[tuple[str, list[str], Any]] = []  # (kind, columns, coef map or value)
        for feat in doc["features"]:
            if feat["kind"] == "categorical":
                self.terms.append(("cat", list(feat["from"]), dict(feat["coef"])))
            else:
                self.terms.append(("num", list(feat["from"]), float(feat["coef"])))
                self.numeric.add(feat["from"][0])

    @classmethod
    def load(cls, path: str) -> Model:
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    def predict(self, ride: Any) -> float:
        if not isinstance(ride, dict):
            raise BadRequest(400, "not-an-object", "the body must be a JSON object of ride fields")
        missing = [c for c in self.inputs if c not in ride]
        if missing:
            raise BadRequest(400, "missing-fields", "missing field(s): " + ", ".join(missing)
                             + " (needed: " + ", ".join(self.inputs) + ")")
        for c in self.inputs:
            v = ride[c]
            if c in self.numeric:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise BadRequest(400, "bad-field", f"{c} must be a finite number, got {json.dumps(v)[:40]}")
            elif not (v is None or isinstance(v, (str, int, float))) or isinstance(v, bool):
                raise BadRequest(400, "bad-field", f"{c} must be a number or a string, got {json.dumps(v)[:40]}")
        total = self.intercept
        for kind, cols, coef in self.terms:
            if kind == "cat":
                total += coef.get("_".join(label_of(ride[c]) for c in cols), 0.0)
            else:
                total += coef * float(ride[cols[0]])
        return total


def make_handler(model: Model) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection
        server_version = "mlops-env-ride-duration"
        disable_nagle_algorithm = True  # small replies must not wait for a delayed ACK

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
            pass  # one line per request would cost more than the prediction

        def _send(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode("utf-8")
            head = (f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
                    f"Server: {self.server_version}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    + ("Connection: close\r\n" if self.close_connection else "") + "\r\n")
            self.wfile.write(head.encode("latin-1") + body)  # one write: one segment

        def _error(self, err: BadRequest) -> None:
            self._send(err.status, {"error": err.code, "message": err.message})

        def do_GET(self) -> None:  # noqa: N802 - stdlib's name
            if self.path.split("?", 1)[0] == "/health":
                self._send(200, {"status": "ok", "model": model.hash})
            elif self.path.split("?", 1)[0] == "/predict":
                self._error(BadRequest(405, "method", "use POST /predict with a JSON body"))
            else:
                self._error(BadRequest(404, "not-found", "paths: GET /health, POST /predict"))

        def do_POST(self) -> None:  # noqa: N802
            try:
                if self.path.split("?", 1)[0] != "/predict":
                    raise BadRequest(404, "not-found", "paths: GET /health, POST /predict")
                length_text = self.headers.get("Content-Length")
                if length_text is None:
                    self.close_connection = True
                    raise BadRequest(411, "length-required", "send a Content-Length header")
                try:
                    length = int(length_text)
                except ValueError:
                    length = -1
                if length < 0:
                    self.close_connection = True
                    raise BadRequest(400, "bad-length", "Content-Length is not a number")
                if length > MAX_BODY:
                    self.close_connection = True  # the body is not read: the connection ends
                    raise BadRequest(413, "too-large", f"the body is {length} bytes; at most {MAX_BODY}")
                raw = self.rfile.read(length)
                try:
                    ride = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as e:
                    raise BadRequest(400, "bad-json", f"the body is not JSON: {e}") from e
                self._send(200, {"duration": model.predict(ride), "model": model.hash})
            except BadRequest as e:
                self._error(e)

    return Handler


def serve(model: Model, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(model))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Serve the ride-duration model over HTTP.")
    p.add_argument("--model", required=True)
    p.add_argument("--host", default="0.0.0.0")  # noqa: S104 - inside a container
    p.add_argument("--port", type=int, default=9696)
    args = p.parse_args(argv)
    model = Model.load(args.model)
    server = serve(model, args.host, args.port)
    # As PID 1 in a container, SIGTERM has no default action: without this `docker stop`
    # (and compose down) would wait 10 s and then kill.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stderr.write(f"serving model {model.hash} on {args.host}:{args.port}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
