"""STAND-IN AWS for the black-box EC2 tests: a moto server on 127.0.0.1 with Canonical's
Ubuntu AMIs and SSM parameters seeded, and a fault-injection middleware.

    python tests/ec2/moto_launcher.py [--port 0]
    -> prints one JSON line {"port": N, "pid": P} on stdout when it serves; SIGTERM stops it.

Why a launcher of our own (../shared/TESTBED.md): AMIs come from ``MOTO_AMIS_PATH``, which
must be set before moto's EC2 models are imported; SSM parameters below ``/aws`` can only be
put into moto's backend from inside the server process; moto has no fault injection.

Faults, set over HTTP by the test (never by mlops-env):

    POST /_mlops_test/faults   {"rules": [RULE, ...], "latency": 0.0}
                               replaces the rules, clears the counters; latency (seconds) is
                               added to every answer (a model of the network round trip to
                               AWS, for benchmarks; 0 by default)
    GET  /_mlops_test/faults   -> {"rules": [...], "seen": {Action: n}, "injected": [n per rule]}

    RULE = {"action": "RunInstances",          # the API action (Action= or X-Amz-Target)
            "contains": "subnet-0abc",          # optional: only requests whose body has this text
            "mode": "error",                    # error: answer CODE without calling moto
                                                # hang_after: let moto do it, then sleep SECONDS
                                                #   before answering (the client can be killed)
                                                # lose_after: let moto do it, then answer CODE
                                                #   (a response lost on the way back)
            "code": "InsufficientInstanceCapacity", "status": 500, "message": "...",
            "count": 1,                         # how many times; -1 = always
            "after": 0,                         # optional: pass the first N calls of the action
            "seconds": 30}

One piece of real AWS behaviour moto lacks is emulated here: RunInstances is idempotent by
ClientToken (a repeated token gets the first answer back, no second instance).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))

import seed  # noqa: E402

CONTROL = "/_mlops_test/faults"


class FaultMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.rules: list[dict[str, Any]] = []
        self.injected: list[int] = []
        self.seen: dict[str, int] = {}
        self.tokens: dict[str, tuple[str, list[tuple[str, str]], bytes]] = {}
        self.latency = 0.0

    # -- WSGI ---------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == CONTROL:
            return self._control(environ, start_response)
        body = self._body(environ)
        action, params, json_protocol = _action(environ, body)
        if self.latency > 0:
            time.sleep(self.latency)
        with self.lock:
            self.seen[action] = self.seen.get(action, 0) + 1
            rule_index = self._match(action, body)
        rule = self.rules[rule_index] if rule_index is not None else None
        if rule and rule.get("mode", "error") == "error":
            return _error(start_response, rule, json_protocol)
        token = params.get("ClientToken") if action == "RunInstances" else None
        if token:
            with self.lock:
                cached = self.tokens.get(token)
            if cached:  # real AWS: same ClientToken -> the first launch's answer, no new instance
                start_response(cached[0], cached[1])
                return [cached[2]]
        status, headers, out = self._forward(environ, body)
        if token and status.startswith("200"):
            with self.lock:
                self.tokens[token] = (status, headers, out)
        if rule and rule.get("mode") == "hang_after":
            time.sleep(float(rule.get("seconds", 30)))
        if rule and rule.get("mode") == "lose_after":
            return _error(start_response, rule, json_protocol)
        start_response(status, headers)
        return [out]

    def _forward(self, environ: dict[str, Any], body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        captured: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self.app(environ, start)
        try:
            out = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        return captured["status"], list(captured["headers"]), out

    @staticmethod
    def _body(environ: dict[str, Any]) -> bytes:
        try:
            n = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            n = 0
        body = environ["wsgi.input"].read(n) if n else b""
        environ["wsgi.input"] = io.BytesIO(body)
        return bytes(body)

    def _match(self, action: str, body: bytes) -> int | None:
        for i, r in enumerate(self.rules):
            if r.get("action") != action:
                continue
            if r.get("contains") and r["contains"].encode() not in body:
                continue
            if self.seen.get(action, 0) <= int(r.get("after", 0)):
                continue
            count = int(r.get("count", 1))
            if count >= 0 and self.injected[i] >= count:
                continue
            self.injected[i] += 1
            return i
        return None

    def _control(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") == "POST":
            doc = json.loads(self._body(environ) or b"{}")
            with self.lock:
                self.rules = list(doc.get("rules") or [])
                self.latency = float(doc.get("latency") or 0.0)
                self.injected = [0] * len(self.rules)
                self.seen = {}
        with self.lock:
            out = json.dumps({"rules": self.rules, "injected": self.injected, "seen": self.seen,
                              "latency": self.latency}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
        return [out]


def _action(environ: dict[str, Any], body: bytes) -> tuple[str, dict[str, str], bool]:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:  # JSON protocols (SSM, Pricing): "AmazonSSM.GetParameter"
        return target.rsplit(".", 1)[-1], {}, True
    params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
    if not params and environ.get("QUERY_STRING"):
        params = {k: v[0] for k, v in urllib.parse.parse_qs(environ["QUERY_STRING"]).items()}
    return params.get("Action", "?"), params, False


def _error(start_response: Any, rule: dict[str, Any], json_protocol: bool) -> Any:
    code = str(rule.get("code", "InternalError"))
    message = str(rule.get("message") or f"{code} (injected by the test)")
    status = int(rule.get("status", 500))
    reason = {400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error", 503: "Service Unavailable"}
    if json_protocol:
        out = json.dumps({"__type": code, "message": message}).encode()
        ctype = "application/x-amz-json-1.1"
    else:
        out = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>"
               f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
               "<RequestID>injected-fault</RequestID></Response>").encode()
        ctype = "text/xml"
    start_response(f"{status} {reason.get(status, 'Error')}", [("Content-Type", ctype), ("Content-Length", str(len(out)))])
    return [out]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    # Before anything imports moto's EC2 models: only our stand-in Ubuntu images.
    amis = Path(tempfile.mkdtemp(prefix="mlops-env-moto-")) / "amis.json"
    amis.write_text(json.dumps(seed.AMIS))
    os.environ["MOTO_AMIS_PATH"] = str(amis)

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    seed.seed_ssm_in_process()
    seed.patch_create_image_snapshot_tags()
    app = FaultMiddleware(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=server.shutdown).start())
    print(json.dumps({"port": server.server_address[1], "pid": os.getpid()}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
