"""Loading and filtering: the notebook's read_dataframe on generated TLC-shaped files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from smokedata import random_trips, trips

from mlops_env.smoke import ridetrain as rt

FEATS = ["PU_DO", "trip_distance"]


def load(path: Path, features: list[str] = FEATS) -> rt.Frame:
    return rt.read_source({"path": str(path)}, features, "test data")


def test_filter_keeps_exact_edges_and_drops_just_outside(write_parquet):
    minutes = [0.99, 1.0, 30.0, 60.0, 60.01, -5.0, 0.0, float("nan"), 59.999]
    df = trips(minutes, [1] * 9, [2] * 9)
    frame = load(write_parquet(df, "edges.parquet"))
    assert frame.y.tolist() == [1.0, 30.0, 60.0, 59.999]
    assert frame.stats == {"raw_rows": 9, "rows": 4, "dropped_duration": 5, "dropped_missing": 0,
                           "duration_from": "lpep_dropoff_datetime - lpep_pickup_datetime"}


def test_edges_exact_with_second_resolution_timestamps(write_parquet):
    # 60 s and 3600 s must give exactly 1.0 and 60.0 minutes, as td.total_seconds() / 60 does.
    t0 = pd.Timestamp("2021-01-05 10:00:00")
    df = pd.DataFrame({
        "lpep_pickup_datetime": [t0] * 4,
        "lpep_dropoff_datetime": [t0 + pd.Timedelta(seconds=s) for s in (59, 60, 3600, 3601)],
        "PULocationID": [1, 2, 3, 4], "DOLocationID": [5, 6, 7, 8],
        "trip_distance": [1.0, 2.0, 3.0, 4.0],
    })
    df["lpep_dropoff_datetime"] = df["lpep_dropoff_datetime"].astype("datetime64[us]")
    frame = load(write_parquet(df, "seconds.parquet"))
    assert frame.y.tolist() == [1.0, 60.0]
    assert frame.columns["PULocationID"].tolist() == [2, 3]


@pytest.mark.parametrize("schema", ["green", "yellow"])
def test_both_schemas(write_parquet, schema):
    df = trips([5.0, 10.0, 120.0], [1, 2, 3], [4, 5, 6], schema=schema)
    frame = load(write_parquet(df, f"{schema}.parquet"))
    prefix = "lpep" if schema == "green" else "tpep"
    assert frame.stats["duration_from"] == f"{prefix}_dropoff_datetime - {prefix}_pickup_datetime"
    assert frame.y.tolist() == [5.0, 10.0]


def test_string_and_int_ids_give_the_same_categories(write_parquet):
    a = trips([5.0, 6.0, 7.0], [1, 10, 132], [2, 20, 7])
    b = a.copy()
    b["PULocationID"] = b["PULocationID"].astype(str)
    b["DOLocationID"] = b["DOLocationID"].astype(float)  # nullable IDs are stored as float
    fa, fb = load(write_parquet(a, "int.parquet")), load(write_parquet(b, "str.parquet"))
    ea = rt.Encoder.fit(fa, FEATS)
    assert ea.vocab["PU_DO"] == ["10_20", "132_7", "1_2"]  # DictVectorizer's (string) order
    assert rt.Encoder.fit(fb, FEATS).vocab == ea.vocab
    # int-trained model sees every str/float category of the other file: nothing unseen
    design = ea.transform(fb)
    assert all((codes >= 0).all() for _n, _o, _w, codes in design.blocks)


def test_already_filtered_file_is_idempotent(write_parquet):
    raw = random_trips(400, 12, seed=3)
    raw.loc[:20, "lpep_dropoff_datetime"] = raw.loc[:20, "lpep_pickup_datetime"]  # 0 minutes
    first = load(write_parquet(raw, "raw.parquet"))
    # What the course notebook writes out: duration column, str IDs, filtered rows.
    done = raw.copy()
    done["duration"] = (done.lpep_dropoff_datetime - done.lpep_pickup_datetime).apply(
        lambda td: td.total_seconds() / 60)
    done = done[(done.duration >= 1) & (done.duration <= 60)]
    done[["PULocationID", "DOLocationID"]] = done[["PULocationID", "DOLocationID"]].astype(str)
    again = load(write_parquet(done, "filtered.parquet"))
    assert first.stats["dropped_duration"] >= 21
    assert again.stats["dropped_duration"] == 0
    assert again.stats["rows"] == first.stats["rows"] == len(done)
    np.testing.assert_array_equal(again.y, first.y)
    np.testing.assert_array_equal(again.y, done.duration.to_numpy())


def test_duration_column_only(write_parquet):
    df = pd.DataFrame({"duration": [0.5, 1.0, 60.0, 61.0], "PULocationID": ["1", "2", "3", "4"],
                       "DOLocationID": ["1", "2", "3", "4"], "trip_distance": [1.0] * 4})
    frame = load(write_parquet(df, "d.parquet"))
    assert frame.y.tolist() == [1.0, 60.0]
    assert frame.stats["duration_from"] == "duration column"


def test_missing_numeric_rows_are_dropped_and_counted(write_parquet):
    df = trips([5.0, 6.0, 7.0, 8.0], [1, 2, 3, 4], [1, 2, 3, 4], [1.0, float("nan"), 3.0, 4.0])
    frame = load(write_parquet(df, "nan.parquet"))
    assert frame.stats["dropped_missing"] == 1
    assert frame.y.tolist() == [5.0, 7.0, 8.0]


def test_empty_after_filtering_is_a_clear_error(write_parquet):
    df = trips([0.5, 61.0, 0.0, -3.0], [1, 2, 3, 4], [1, 2, 3, 4])
    with pytest.raises(rt.SmokeError) as info:
        load(write_parquet(df, "empty.parquet"))
    err = info.value
    assert err.exit_code == 8
    assert err.code == "empty-after-filter"
    assert "no trips left after filtering (4 rows" in err.message


def test_missing_columns_are_a_clear_error(write_parquet):
    df = trips([5.0, 6.0], [1, 2], [1, 2]).drop(columns=["DOLocationID"])
    with pytest.raises(rt.SmokeError) as info:
        load(write_parquet(df, "nodo.parquet"))
    assert info.value.exit_code == 8
    assert info.value.code == "missing-columns"
    assert "no column DOLocationID" in info.value.message
    assert "lpep_pickup_datetime" in info.value.message  # lists what the file does have


def test_no_timestamps_and_no_duration(write_parquet):
    df = trips([5.0], [1], [1]).drop(columns=["lpep_pickup_datetime"])
    with pytest.raises(rt.SmokeError, match="neither pickup/dropoff timestamps") as info:
        load(write_parquet(df, "nots.parquet"))
    assert info.value.exit_code == 8


def _valid_bytes(write_parquet) -> bytes:
    return write_parquet(random_trips(2000, 20, seed=1), "valid.parquet").read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "empty", "html", "bad-footer", "tail-cut"])
def test_corrupt_files_are_clear_errors(write_parquet, tmp_path, damage):
    good = _valid_bytes(write_parquet)
    bad = {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "html": b"<html><body>403 Forbidden</body></html>\n" * 20,
        "bad-footer": good[:4] + b"\0" * 100 + (10**6).to_bytes(4, "little") + b"PAR1",
        "tail-cut": good[:-1],
    }[damage]
    path = tmp_path / f"{damage}.parquet"
    path.write_bytes(bad)
    with pytest.raises(rt.SmokeError) as info:
        rt.resolve_source(str(path), str(tmp_path / "cache"))
    assert info.value.exit_code == 8
    assert info.value.code == "integrity"
    assert str(path) in info.value.message


def test_corrupt_column_data_is_a_clear_error(write_parquet, tmp_path):
    good = bytearray(_valid_bytes(write_parquet))
    footer = int.from_bytes(good[-8:-4], "little")
    body = len(good) - footer - 8
    for i in range(8, body, 7):  # scribble over every page, keep header and footer intact
        good[i] ^= 0x5A
    path = tmp_path / "scribbled.parquet"
    path.write_bytes(bytes(good))
    info = rt.resolve_source(str(path), str(tmp_path / "cache"))  # the footer still reads
    with pytest.raises(rt.SmokeError) as err:
        rt.read_source(info, FEATS, "train data")
    assert err.value.exit_code == 8
    assert "is corrupt" in err.value.message


def test_missing_local_file_is_not_found(tmp_path):
    with pytest.raises(rt.SmokeError) as info:
        rt.resolve_source(str(tmp_path / "nope.parquet"), str(tmp_path))
    assert info.value.exit_code == 3


def test_file_url_is_a_local_path(write_parquet, tmp_path):
    path = write_parquet(random_trips(50, 5, seed=2), "f.parquet")
    info = rt.resolve_source(path.as_uri(), str(tmp_path / "cache"))
    assert info["path"] == str(path)
    assert not (tmp_path / "cache").exists()  # nothing copied


def test_sample_is_deterministic_green_schema():
    a, b = rt.sample_frame(1), rt.sample_frame(1)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns[:3]) == ["VendorID", "lpep_pickup_datetime", "lpep_dropoff_datetime"]
    assert len(a.columns) == 20
    assert a.PULocationID.between(1, 265).all() and a.DOLocationID.between(1, 265).all()
    frame = rt.prepare(a, FEATS, "sample")
    dropped = frame.stats["dropped_duration"]
    assert 0.01 * len(a) < dropped < 0.1 * len(a)  # the filter has work to do
    assert frame.stats["raw_rows"] == 20000
    assert not math.isnan(float(np.corrcoef(frame.columns["trip_distance"], frame.y)[0, 1]))
    assert np.corrcoef(frame.columns["trip_distance"], frame.y)[0, 1] > 0.5
    feb = rt.sample_frame(2)
    assert feb.lpep_pickup_datetime.min() >= pd.Timestamp("2021-02-01")


def test_parse_features():
    assert rt.parse_features(" PU_DO, trip_distance ,PU_DO") == ["PU_DO", "trip_distance"]
    assert rt.parse_features(None) == ["PU_DO", "trip_distance"]
    with pytest.raises(rt.SmokeError) as info:
        rt.parse_features(" , ")
    assert info.value.exit_code == 2
