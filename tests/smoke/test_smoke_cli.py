"""`mlops-env smoke-test` through Typer, and ridetrain.py as a standalone script."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from smokedata import random_trips
from typer.testing import CliRunner

from mlops_env.cli import app
from mlops_env.smoke import RIDETRAIN, ridetrain_source

RUNNER = CliRunner()
DATA_KEYS = {"train_rows", "val_rows", "rmse_train", "rmse_val", "features", "synthetic",
             "seconds", "versions", "host", "train_source", "val_source", "sources"}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mlops-home"
    monkeypatch.setenv("MLOPS_ENV_HOME", str(home))
    return home


def invoke(*args: str) -> tuple[int, dict]:
    result = RUNNER.invoke(app, list(args))
    return result.exit_code, json.loads(result.stdout)


def test_cli_json_sample(home):
    code, doc = invoke("--json", "smoke-test", "--sample")
    assert code == 0
    assert doc["status"] == "ok" and doc["exit_code"] == 0 and doc["errors"] == []
    data = doc["data"]
    assert DATA_KEYS <= set(data)
    assert data["synthetic"] is True
    assert data["features"] == ["PU_DO", "trip_distance"]
    assert data["train_rows"] > 15000 and data["val_rows"] > 12000
    assert 1.0 < data["rmse_train"] < 5.0 and 1.0 < data["rmse_val"] < 6.0
    assert set(data["seconds"]) >= {"load", "features", "fit", "predict"}
    assert {"python", "numpy", "pandas", "pyarrow", "scipy"} <= set(data["versions"])
    report = home / "reports" / "local" / "smoke-report.json"
    assert data["report"] == str(report)
    saved = json.loads(report.read_text())
    assert saved["status"] == "ok" and saved["data"]["rmse_val"] == data["rmse_val"]
    assert (home / "reports" / "local" / "model.npz").is_file()


def test_cli_sample_is_reproducible_and_features_option(home, tmp_path):
    _, a = invoke("--json", "smoke-test", "--sample", "--report-dir", str(tmp_path / "a"))
    code, b = invoke("smoke-test", "--sample", "--json", "--report-dir", str(tmp_path / "b"),
                     "--features", "PULocationID,DOLocationID,trip_distance")
    _, c = invoke("--json", "smoke-test", "--sample", "--report-dir", str(tmp_path / "c"))
    assert code == 0
    assert a["data"]["rmse_val"] == c["data"]["rmse_val"]
    assert b["data"]["features"] == ["PULocationID", "DOLocationID", "trip_distance"]
    assert b["data"]["rmse_train"] != a["data"]["rmse_train"]
    assert (tmp_path / "b" / "smoke-report.json").is_file()


def test_cli_local_files(home, write_parquet):
    train = write_parquet(random_trips(600, 12, seed=1), "train.parquet")
    val = write_parquet(random_trips(400, 12, seed=2, schema="yellow"), "val.parquet")
    code, doc = invoke("--json", "smoke-test", "--train", str(train), "--val", str(val))
    assert code == 0, doc
    assert doc["data"]["synthetic"] is False
    assert doc["data"]["val_source"] == str(val)


@pytest.mark.parametrize(("args", "exit_code", "err_code"), [
    (["--train", "/no/such/file.parquet"], 3, "not-found"),
    (["--sample", "--train", "x.parquet"], 2, "usage"),
    (["--sample", "--features", " , "], 2, "usage"),
    (["--sample", "--features", "PU_DO,no_such_column"], 8, "missing-columns"),
])
def test_cli_errors_are_enveloped(home, args, exit_code, err_code):
    code, doc = invoke("--json", "smoke-test", *args)
    assert code == exit_code
    assert doc["status"] == "error" and doc["exit_code"] == exit_code
    assert doc["errors"][0]["code"] == err_code
    assert doc["errors"][0]["message"] and doc["errors"][0]["hint"]


def test_cli_corrupt_file_is_exit_8_and_replaces_the_old_report(home, tmp_path):
    assert invoke("--json", "smoke-test", "--sample")[0] == 0
    report = home / "reports" / "local" / "smoke-report.json"
    assert json.loads(report.read_text())["status"] == "ok"
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1" + b"x" * 100)
    code, doc = invoke("--json", "smoke-test", "--train", str(bad))
    assert code == 8 and doc["errors"][0]["code"] == "integrity"
    saved = json.loads(report.read_text())
    assert saved["status"] == "error" and saved["errors"][0]["code"] == "integrity"


def test_cli_human_output(home):
    result = RUNNER.invoke(app, ["smoke-test", "--sample"])
    assert result.exit_code == 0
    assert "smoke test ok" in result.stdout
    assert "RMSE" in result.stdout


def test_cli_remote_hands_off_to_run_on_workstation(home, monkeypatch):
    import types

    calls = []
    fake = types.ModuleType("mlops_env.smoketest")

    def run_on_workstation(*, name, args, ui):
        calls.append((name, args))
        return {"rmse_train": 1.5, "host": "box"}

    fake.run_on_workstation = run_on_workstation  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mlops_env.smoketest", fake)
    code, doc = invoke("--json", "smoke-test", "box1", "--sample", "--features", "PU_DO")
    assert code == 0
    assert calls == [("box1", ["--features", "PU_DO", "--sample"])]
    assert doc["data"] == {"rmse_train": 1.5, "host": "box"}


# -- ridetrain.py on its own -----------------------------------------------------------------

def test_ridetrain_imports_only_stdlib_and_the_data_stack():
    tree = ast.parse(ridetrain_source())
    top = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            top.add((node.module or "").split(".")[0])
    third_party = top - set(sys.stdlib_module_names) - {"__future__"}
    # threadpoolctl (comes with scikit-learn) is optional: imported in a try, used if there.
    assert third_party <= {"numpy", "pandas", "pyarrow", "scipy", "threadpoolctl"}, third_party


def run_script(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-X", "importtime"]
    cmd += ["-"] if stdin is not None else [str(RIDETRAIN)]
    return subprocess.run(cmd + args, cwd=cwd, input=stdin, capture_output=True, text=True,  # noqa: S603 - our own script
                          timeout=120, check=False)


def test_ridetrain_runs_as_a_standalone_script(tmp_path):
    proc = run_script(["--sample", "--json", "--report-dir", str(tmp_path / "r"),
                       "--cache-dir", str(tmp_path / "c")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)  # exactly one JSON document
    assert doc["status"] == "ok" and doc["data"]["synthetic"] is True
    assert "mlops_env" not in proc.stderr  # -X importtime lists every module imported
    assert "sklearn" not in proc.stderr


def test_ridetrain_piped_on_stdin_like_a_remote_box(tmp_path):
    proc = run_script(["--sample", "--json", "--report-dir", str(tmp_path / "r")], tmp_path,
                      stdin=ridetrain_source())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["status"] == "ok"
    assert "mlops_env" not in proc.stderr


def test_ridetrain_script_errors(tmp_path):
    proc = run_script(["--json", "--train", str(tmp_path / "none.parquet")], tmp_path)
    assert proc.returncode == 3
    doc = json.loads(proc.stdout)
    assert doc == {"status": "error", "exit_code": 3, "data": {},
                   "errors": [{"code": "not-found", "message": f"no such file: {tmp_path / 'none.parquet'}",
                               "hint": doc["errors"][0]["hint"]}]}
    proc = run_script(["--json", "--bogus"], tmp_path)
    assert proc.returncode == 2 and json.loads(proc.stdout)["errors"][0]["code"] == "usage"
    proc = run_script(["--sample", "--report-dir", str(tmp_path / "h")], tmp_path)  # human
    assert proc.returncode == 0 and proc.stdout.startswith("smoke test ok on ")


def test_failed_run_overwrites_an_old_report(tmp_path):
    report = tmp_path / "r" / "smoke-report.json"
    assert run_script(["--sample", "--report-dir", str(report.parent)], tmp_path).returncode == 0
    assert json.loads(report.read_text())["status"] == "ok"
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"nope")
    proc = run_script(["--train", str(bad), "--report-dir", str(report.parent)], tmp_path)
    assert proc.returncode == 8
    assert "error: " in proc.stderr
    assert json.loads(report.read_text())["status"] == "error"


def test_cli_startup_does_not_import_the_data_stack():
    code = ("import sys, mlops_env.cli; "
            "print(sorted(m for m in ('pandas', 'numpy', 'scipy', 'pyarrow') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,  # noqa: S603
                          timeout=60, check=True)
    assert proc.stdout.strip() == "[]"
