"""The course's numbers, on the course's data, through the INSTALLED CLI: `mlops-env smoke-test`
(a local run) on the real January and February 2021 green-taxi files in tests/data (see
tests/data/PROVENANCE.md) must give the notebook's row counts and RMSEs.

Reference values: MLOps Zoomcamp week 1, `01-intro/duration-prediction.ipynb`:
- features PULocationID, DOLocationID, trip_distance; training RMSE 9.775464208836793 on 73,908
  January trips;
- features PU_DO, trip_distance; trained on January, validation RMSE 7.479513631630414 on 61,921
  February trips.
Within 0.005: the one-hot design is rank-deficient, so solvers legitimately differ in the last
digits (tests/data/PROVENANCE.md)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from clirun import mlops_env_bin

DATA = Path(__file__).resolve().parents[1] / "data"
JAN = DATA / "green_tripdata_2021-01.filtered.parquet"
FEB = DATA / "green_tripdata_2021-02.filtered.parquet"
SHA256 = {JAN.name: "cf8805f04e46d54330f8b17ffd2060a191aea8a940275eebb38c85535f4cdd79",
          FEB.name: "787b0d672a42fdfbcdf4ea2878e80af8fb234e55cfdbe6f7b582f4007bda4a0d"}
TOLERANCE = 0.005


def smoke_test(tmp_path: Path, features: str) -> dict[str, Any]:
    env = {**os.environ, "MLOPS_ENV_HOME": str(tmp_path / "mlops"), "HOME": str(tmp_path / "home"),
           "NO_COLOR": "1"}
    p = subprocess.run(  # noqa: S603
        [mlops_env_bin(), "--json", "smoke-test", "--train", str(JAN), "--val", str(FEB), "--features", features,
         "--report-dir", str(tmp_path / f"report-{features}")],
        env=env, capture_output=True, text=True, timeout=600, check=False, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    data: dict[str, Any] = json.loads(p.stdout)["data"]
    assert data["synthetic"] is False
    # these very files were read (not a cached download or a sample)
    assert {Path(data["sources"][k]["path"]).name: data["sources"][k]["sha256"] for k in ("train", "val")} == SHA256
    return data


@pytest.fixture(scope="module")
def files() -> None:
    for f in (JAN, FEB):
        assert f.is_file(), f"{f} is missing: it is part of the repository (tests/data/PROVENANCE.md)"


def test_training_rmse_with_the_notebooks_first_features(tmp_path: Path, files: None) -> None:
    d = smoke_test(tmp_path, "PULocationID,DOLocationID,trip_distance")
    assert (d["train_rows"], d["val_rows"]) == (73_908, 61_921)
    assert d["rmse_train"] == pytest.approx(9.775464208836793, abs=TOLERANCE)


def test_validation_rmse_with_pu_do(tmp_path: Path, files: None) -> None:
    d = smoke_test(tmp_path, "PU_DO,trip_distance")
    assert (d["train_rows"], d["val_rows"]) == (73_908, 61_921)
    assert d["rmse_val"] == pytest.approx(7.479513631630414, abs=TOLERANCE)
