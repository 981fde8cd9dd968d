"""The exported JSON model (issue 15) and the stdlib web service that serves it.

Round trip: the JSON document, read back by the service's own code, predicts what the trained
model predicts on every validation ride (1e-9). The service runs for real on 127.0.0.1 (a
thread in this process) and is asked over real HTTP: good rides, bad JSON, missing fields,
unseen IDs (ignored, as the training encoding ignores them), IDs as int/float/str/null, and
bodies over the limit.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from smokedata import random_trips, trips

from mlops_env.smoke import ridetrain as rt
from mlops_env.smoke import serve_app, serve_check


def _train(train: pd.DataFrame, val: pd.DataFrame, features: list[str]) -> tuple[dict[str, Any], Any, rt.Frame]:
    ftr = rt.prepare(train, features, "train")
    fva = rt.prepare(val, features, "val")
    enc, dtr = rt.Encoder.fit_transform(ftr, features)
    coef, intercept, _ = rt.fit_ols(dtr, ftr.y)
    doc = rt.model_document(enc, coef, intercept, {"src": "test", "sha256": rt.frame_sha256(ftr)})
    return doc, rt.predict(enc.transform(fva), coef, intercept), fva


@pytest.mark.parametrize("features", [["PU_DO", "trip_distance"],
                                      ["PULocationID", "DOLocationID", "trip_distance"],
                                      ["PULocationID", "trip_distance"]])
def test_json_model_round_trip_predicts_like_the_trained_model(features: list[str], tmp_path: Path) -> None:
    train, val = random_trips(3000, 40, 1), random_trips(1500, 55, 2)  # zones 41..55 unseen
    doc, expected, fva = _train(train, val, features)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    model = serve_app.Model.load(str(path))
    rides = rt.serve_rides(fva, features, expected, count=len(fva))
    assert len(rides) == len(fva)
    unseen = 0
    for item in rides:
        got = model.predict(json.loads(json.dumps(item["ride"])))  # as the wire carries it
        assert abs(got - item["duration"]) <= 1e-9, item
        assert abs(rt.predict_document(doc, item["ride"]) - item["duration"]) <= 1e-9
        unseen += str(item["ride"]["PULocationID"]) not in {lab for f in doc["features"] if f["name"] == "PULocationID"
                                                         for lab in f["coef"]}
    if "PULocationID" in features:
        assert unseen > 0  # the unseen-ID path really ran


def test_model_document_is_hashed_and_exact(tmp_path: Path) -> None:
    doc, _, _ = _train(random_trips(500, 10, 3), random_trips(200, 10, 4), ["PU_DO", "trip_distance"])
    assert doc["format"] == serve_app.MODEL_FORMAT and len(doc["hash"]) == 16
    assert doc["inputs"] == ["PULocationID", "DOLocationID", "trip_distance"]
    assert rt.model_hash(json.loads(json.dumps(doc))) == doc["hash"]  # floats survive JSON exactly
    changed = json.loads(json.dumps(doc))
    changed["intercept"] += 1e-12
    assert rt.model_hash(changed) != doc["hash"]


def test_ids_as_float_str_and_null_use_the_training_labels() -> None:
    # Trained on float IDs with a missing one (the category "nan"), as the notebook's str cast.
    train = trips([5, 10, 15, 20, 25, 30] * 5, [1.0, 2.0, np.nan, 1.0, 2.0, np.nan] * 5,
                  [3, 3, 4, 4, 3, 4] * 5, [1, 2, 3, 4, 5, 6] * 5)
    doc, _, _ = _train(train, train, ["PULocationID", "DOLocationID", "trip_distance"])
    model = serve_app.Model(doc)
    base = {"DOLocationID": 3, "trip_distance": 2.0}
    as_int = model.predict({**base, "PULocationID": 1})
    assert model.predict({**base, "PULocationID": 1.0}) == as_int
    assert model.predict({**base, "PULocationID": "1"}) == as_int
    nan_coef = next(f for f in doc["features"] if f["name"] == "PULocationID")["coef"]["nan"]
    unseen = model.predict({**base, "PULocationID": 999})
    assert model.predict({**base, "PULocationID": None}) == pytest.approx(unseen + nan_coef, abs=1e-12)
    assert unseen == pytest.approx(rt.predict_document(doc, {**base, "PULocationID": 999}), abs=0)


def test_run_writes_model_json_and_rides(tmp_path: Path) -> None:
    data = rt.run(sample=True, report_dir=str(tmp_path), cache_dir=str(tmp_path / "c"))
    doc = json.loads(Path(data["model_json"]).read_text())
    rides = json.loads(Path(data["serve_rides"]).read_text())
    assert doc["hash"] == data["model_hash"] == rides["model"]
    assert len(rides["rides"]) == rt.SERVE_RIDES
    assert doc["training"]["sha256_of"] == "prepared data" and len(doc["training"]["sha256"]) == 64
    model = serve_app.Model(doc)
    assert all(abs(model.predict(r["ride"]) - r["duration"]) <= 1e-9 for r in rides["rides"])
    # The .npz model and the JSON model agree.
    enc, coef, intercept, _ = rt.load_model(data["model"])
    assert doc["intercept"] == intercept and enc.features == [f["name"] for f in doc["features"]]


# -- the service over real HTTP ----------------------------------------------------------------

@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, Any]]]:
    doc, _, _ = _train(random_trips(800, 12, 5), random_trips(10, 12, 6), ["PU_DO", "trip_distance"])
    server = serve_app.serve(serve_app.Model(doc), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], doc
    finally:
        server.shutdown()
        server.server_close()


def _ask(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_health_and_predict(service: tuple[int, dict[str, Any]]) -> None:
    port, doc = service
    assert _ask(port, "GET", "/health") == (200, {"status": "ok", "model": doc["hash"]})
    ride = {"PULocationID": 3, "DOLocationID": 7, "trip_distance": 1.01}
    status, answer = _ask(port, "POST", "/predict", json.dumps(ride).encode())
    assert status == 200 and answer["model"] == doc["hash"]
    assert answer["duration"] == rt.predict_document(doc, ride)
    # An unseen zone pair: only intercept + distance, as the training encoding ignores it.
    status, answer = _ask(port, "POST", "/predict", json.dumps({**ride, "PULocationID": 4242}).encode())
    coef = next(f for f in doc["features"] if f["name"] == "trip_distance")["coef"]
    assert status == 200 and answer["duration"] == doc["intercept"] + coef * 1.01


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"{not json", 400, "bad-json"),
    (b"\xff\xfe", 400, "bad-json"),
    (b"[1, 2]", 400, "not-an-object"),
    (b'{"PULocationID": 43}', 400, "missing-fields"),
    (b'{"PULocationID": 43, "DOLocationID": 151, "trip_distance": "far"}', 400, "bad-field"),
    (b'{"PULocationID": 43, "DOLocationID": 151, "trip_distance": true}', 400, "bad-field"),
    (b'{"PULocationID": [1], "DOLocationID": 151, "trip_distance": 1}', 400, "bad-field"),
    (b'{"PULocationID": 1, "DOLocationID": 151, "trip_distance": NaN}', 400, "bad-field"),
])
def test_bad_requests_get_a_clear_json_error(service: tuple[int, dict[str, Any]], body: bytes, status: int,
                                             code: str) -> None:
    port, _ = service
    got_status, answer = _ask(port, "POST", "/predict", body)
    assert (got_status, answer["error"]) == (status, code), answer
    if code == "missing-fields":
        assert "DOLocationID" in answer["message"] and "trip_distance" in answer["message"]


def test_large_body_is_refused_without_reading_it(service: tuple[int, dict[str, Any]]) -> None:
    port, _ = service
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        # Announce 10 MB, send none of it: the answer must come at once (the body is not read).
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
        reply = s.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 413") and '"too-large"' in reply


def test_other_paths_and_methods(service: tuple[int, dict[str, Any]]) -> None:
    port, _ = service
    assert _ask(port, "GET", "/nothing")[0] == 404
    assert _ask(port, "GET", "/predict")[0] == 405
    assert _ask(port, "POST", "/health", b"{}")[0] == 404


def test_check_client_finds_the_first_differing_ride(service: tuple[int, dict[str, Any]], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    port, doc = service
    ride = {"PULocationID": 3, "DOLocationID": 7, "trip_distance": 2.5}
    good = rt.predict_document(doc, ride)
    rides = {"model": doc["hash"], "rides": [{"row": 0, "ride": ride, "duration": good},
                                             {"row": 1, "ride": ride, "duration": good + 1e-6}]}
    path = tmp_path / "rides.json"
    path.write_text(json.dumps(rides))
    rc = serve_check.main(["--url", f"http://127.0.0.1:{port}", "--rides", str(path), "--wait", "5"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 8 and out["code"] == "predictions-differ" and (out["checked"], out["matches"]) == (2, 1)
    assert out["first_mismatch"]["row"] == 1 and str(good) in out["message"]
    rides["rides"].pop()
    path.write_text(json.dumps(rides))
    assert serve_check.main(["--url", f"http://127.0.0.1:{port}", "--rides", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and out["p50_ms"] is not None


def test_check_client_reports_a_service_that_does_not_answer(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        path = tmp_path / "rides.json"
        path.write_text(json.dumps({"model": "x", "rides": []}))
        rc = serve_check.main(["--url", f"http://127.0.0.1:{port}", "--rides", str(path), "--wait", "0.3"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["code"] == "not-answering"


def test_service_and_check_are_stdlib_only() -> None:
    import ast

    for mod in (serve_app, serve_check):
        tree = ast.parse(Path(mod.__file__ or "").read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        import sys

        assert names <= set(sys.stdlib_module_names) | {"__future__"}, names
