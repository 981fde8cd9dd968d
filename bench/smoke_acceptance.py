#!/usr/bin/env python3
"""Acceptance: ridetrain reproduces the course notebook's numbers on the real TLC data.

    .venv/bin/python bench/smoke_acceptance.py [DATA_DIR]

DATA_DIR defaults to tests/data in this repository (see tests/data/PROVENANCE.md). Two checks,
each through ``ridetrain.run`` (parquet check, read, filter, features, exact fit, predict):

1. features PULocationID,DOLocationID,trip_distance, trained on January 2021: 73,908 rows
   and training RMSE within 0.005 of the notebook's 9.775464208836793;
2. features PU_DO,trip_distance, trained on January, validated on February: validation RMSE
   within 0.005 of the notebook's 7.479513631630414.

Exits 0 when both pass, 1 otherwise (3 when the data files are missing).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
JAN = "green_tripdata_2021-01.filtered.parquet"
FEB = "green_tripdata_2021-02.filtered.parquet"
TOLERANCE = 0.005
NOTEBOOK_TRAIN_RMSE = 9.775464208836793  # PULocationID, DOLocationID, trip_distance
NOTEBOOK_TRAIN_ROWS = 73908
NOTEBOOK_VAL_RMSE = 7.479513631630414  # PU_DO, trip_distance; train Jan, validate Feb


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    data_dir = Path(args[0]) if args else DATA
    jan, feb = data_dir / JAN, data_dir / FEB
    for f in (jan, feb):
        if not f.is_file():
            print(f"missing {f} (see tests/data/PROVENANCE.md)", file=sys.stderr)
            return 3
    sys.path.insert(0, str(REPO / "src"))
    from mlops_env.smoke import ridetrain as rt

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        one = rt.run(train=str(jan), val=str(feb), features="PULocationID,DOLocationID,trip_distance",
                     report_dir=f"{tmp}/a", cache_dir=f"{tmp}/cache")
        two = rt.run(train=str(jan), val=str(feb), features="PU_DO,trip_distance",
                     report_dir=f"{tmp}/b", cache_dir=f"{tmp}/cache")
    checks = [
        ("train rows (PULocationID,DOLocationID,trip_distance)", one["train_rows"],
         NOTEBOOK_TRAIN_ROWS, 0),
        ("train RMSE (PULocationID,DOLocationID,trip_distance)", one["rmse_train"],
         NOTEBOOK_TRAIN_RMSE, TOLERANCE),
        ("val RMSE (PU_DO,trip_distance; Jan -> Feb)", two["rmse_val"], NOTEBOOK_VAL_RMSE,
         TOLERANCE),
    ]
    for label, got, want, tol in checks:
        diff = got - want
        passed = abs(diff) <= tol
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'}  {label}: {got!r} vs notebook {want!r} "
              f"(diff {diff:+.6g}, allowed {tol:g})")
    print(f"      also: val RMSE with PULocationID,DOLocationID = {one['rmse_val']!r}, "
          f"train RMSE with PU_DO = {two['rmse_train']!r} ({two['val_rows']:,} val rows)")
    print(f"      solver: {two['solver']['method']}; gradient_rel "
          f"{one['solver']['gradient_rel']:.1e} / {two['solver']['gradient_rel']:.1e}")
    v = two["versions"]
    print(f"      versions: python {v['python']}, numpy {v['numpy']}, pandas {v['pandas']}, "
          f"pyarrow {v['pyarrow']}, scipy {v['scipy']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
