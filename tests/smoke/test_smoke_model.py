"""The model: one-hot CSR design + exact least squares, against scikit-learn and by hand."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pandas as pd
import pytest
from smokedata import random_trips, trips

from mlops_env.smoke import ridetrain as rt


def ours(train: pd.DataFrame, val: pd.DataFrame, features: list[str]) -> dict:
    ftr = rt.prepare(train, features, "train")
    fva = rt.prepare(val, features, "val")
    enc, dtr = rt.Encoder.fit_transform(ftr, features)
    dva = enc.transform(fva)
    coef, intercept, info = rt.fit_ols(dtr, ftr.y)
    return {"pred_train": rt.predict(dtr, coef, intercept), "pred_val": rt.predict(dva, coef, intercept),
            "y_train": ftr.y, "y_val": fva.y, "coef": coef, "intercept": intercept, "info": info,
            "encoder": enc, "design_val": dva}


def notebook(train: pd.DataFrame, val: pd.DataFrame, features: list[str], *, dense: bool,
             tol: float = 1e-12) -> dict:
    """The course notebook, literally: read_dataframe, to_dict records, DictVectorizer, LR."""
    sklearn = pytest.importorskip("sklearn")
    del sklearn
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression

    def read_dataframe(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df["duration"] = df.lpep_dropoff_datetime - df.lpep_pickup_datetime
        df.duration = df.duration.apply(lambda td: td.total_seconds() / 60)
        df = df[(df.duration >= 1) & (df.duration <= 60)].copy()
        categorical = ["PULocationID", "DOLocationID"]
        df[categorical] = df[categorical].astype(str)
        df["PU_DO"] = df["PULocationID"] + "_" + df["DOLocationID"]
        return df

    df_train, df_val = read_dataframe(train), read_dataframe(val)
    dv = DictVectorizer()
    X_train = dv.fit_transform(df_train[features].to_dict(orient="records"))
    X_val = dv.transform(df_val[features].to_dict(orient="records"))
    if dense:  # scipy.linalg.lstsq: the exact minimum-norm solution, no iteration
        X_train, X_val = X_train.toarray(), X_val.toarray()
    if "tol" not in inspect.signature(LinearRegression).parameters:
        # scikit-learn < 1.7: lsqr stops at 1e-6, and the dense lstsq keeps near-zero singular
        # values of rank-deficient designs (huge cancelling coefficients): no usable reference.
        pytest.skip("needs scikit-learn >= 1.7 for LinearRegression(tol=...)")
    lr = LinearRegression(tol=tol)
    lr.fit(X_train, df_train.duration.values)
    return {"pred_train": lr.predict(X_train), "pred_val": lr.predict(X_val),
            "y_train": df_train.duration.values, "y_val": df_val.duration.values}


@pytest.mark.parametrize("features", [["PU_DO", "trip_distance"],
                                      ["PULocationID", "DOLocationID", "trip_distance"],
                                      ["PULocationID", "trip_distance"],
                                      ["PULocationID", "DOLocationID"]])
@pytest.mark.parametrize("dense", [True, False], ids=["lstsq", "lsqr-tight"])
def test_agrees_with_dictvectorizer_linearregression(features, dense):
    # Few zones and rows: rank-deficient one-hot blocks, singletons, and unseen val categories.
    train = random_trips(500, 25, seed=11)
    val = random_trips(300, 30, seed=12)  # zones 26..30 never seen in training
    a = ours(train, val, features)
    b = notebook(train, val, features, dense=dense)
    np.testing.assert_array_equal(a["y_train"], b["y_train"])
    np.testing.assert_array_equal(a["y_val"], b["y_val"])
    np.testing.assert_allclose(a["pred_train"], b["pred_train"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(a["pred_val"], b["pred_val"], rtol=0, atol=1e-6)
    for part in ("train", "val"):
        assert abs(rt.rmse(a[f"y_{part}"], a[f"pred_{part}"])
                   - rt.rmse(b[f"y_{part}"], b[f"pred_{part}"])) < 1e-6
    assert a["info"]["gradient_rel"] < 1e-9


def test_min_norm_by_hand_and_unseen_category_gets_the_intercept():
    # y for zone 1: 2, 4 (mean 3); zone 2: 10. Among all fits, the min-norm one has
    # c1 = -3.5, c2 = +3.5 and intercept 16/3 - (2/3 * -3.5 + 1/3 * 3.5) = 6.5.
    train = trips([2.0, 4.0, 10.0], [1, 1, 2], [9, 9, 9])
    val = trips([5.0, 5.0, 5.0], [1, 2, 77], [9, 9, 9])
    r = ours(train, val, ["PULocationID"])
    assert r["encoder"].vocab == {"PULocationID": ["1", "2"]}
    np.testing.assert_allclose(r["coef"], [-3.5, 3.5], atol=1e-12)
    assert r["intercept"] == pytest.approx(6.5, abs=1e-12)
    np.testing.assert_allclose(r["pred_train"], [3.0, 3.0, 10.0], atol=1e-12)
    np.testing.assert_allclose(r["pred_val"], [3.0, 10.0, 6.5], atol=1e-12)  # 77: unseen
    assert rt.rmse(r["y_train"], r["pred_train"]) == pytest.approx(math.sqrt(2 / 3), abs=1e-12)
    unseen = r["design_val"].blocks[0][3]
    assert unseen.tolist() == [0, 1, -1]
    assert r["design_val"].X[2].nnz == 0  # the unseen row has no entries at all


def test_unseen_categories_ignored_like_dictvectorizer():
    train = random_trips(200, 6, seed=5)
    val = trips([10.0, 10.0], [1, 99], [2, 2], [2.0, 2.0])  # PU 99 never seen
    r = ours(train, val, ["PULocationID", "DOLocationID", "trip_distance"])
    enc, coef = r["encoder"], r["coef"]
    names = enc.feature_names()
    expected_seen = (r["intercept"] + coef[names.index("PULocationID=1")]
                     + coef[names.index("DOLocationID=2")] + 2.0 * coef[names.index("trip_distance")])
    expected_unseen = (r["intercept"] + coef[names.index("DOLocationID=2")]
                       + 2.0 * coef[names.index("trip_distance")])
    np.testing.assert_allclose(r["pred_val"], [expected_seen, expected_unseen], atol=1e-12)


def test_numeric_only_model_is_plain_ols():
    train = random_trips(300, 5, seed=8)
    r = ours(train, train, ["trip_distance"])
    X = np.column_stack([np.ones(len(r["y_train"])), train_distance(train, r)])
    beta = np.linalg.lstsq(X, r["y_train"], rcond=None)[0]
    assert r["intercept"] == pytest.approx(beta[0], abs=1e-9)
    assert r["coef"][0] == pytest.approx(beta[1], abs=1e-9)
    assert r["info"]["absorbed"] == "intercept"


def train_distance(train: pd.DataFrame, r: dict) -> np.ndarray:
    frame = rt.prepare(train, ["trip_distance"], "t")
    return np.asarray(frame.columns["trip_distance"], dtype=float)


def test_disconnected_zones_are_handled_exactly():
    # Two separate "cities": PU 1-3 only go to DO 1-3, PU 4-6 only to DO 4-6. The one-hot
    # design then has an extra null direction (shift one city's PU up, its DO down).
    a = trips([5, 7, 9, 6, 8, 10, 12, 11], [1, 2, 3, 1, 2, 3, 1, 2], [1, 2, 3, 2, 3, 1, 3, 1],
              [1, 2, 3, 1.5, 2.5, 3.5, 1.2, 2.2])
    b = trips([20, 25, 30, 22, 27, 33, 21, 26], [4, 5, 6, 4, 5, 6, 4, 5], [4, 5, 6, 5, 6, 4, 6, 4],
              [4, 5, 6, 4.5, 5.5, 6.5, 4.2, 5.2])
    train = pd.concat([a, b], ignore_index=True)
    val = trips([10, 10, 10], [1, 4, 7], [4, 1, 1], [2, 2, 2])  # crosses cities, and unseen PU 7
    feats = ["PULocationID", "DOLocationID", "trip_distance"]
    r = ours(train, val, feats)
    assert r["info"]["rank_deficiency"] == 3  # the intercept, one per city
    b2 = notebook(train, val, feats, dense=True)
    np.testing.assert_allclose(r["pred_val"], b2["pred_val"], atol=1e-9)


def test_model_file_roundtrip(tmp_path):
    train, val = random_trips(300, 10, seed=1), random_trips(200, 12, seed=2)
    feats = ["PU_DO", "trip_distance"]
    r = ours(train, val, feats)
    path = str(tmp_path / "model.npz")
    rt.save_model(path, r["encoder"], r["coef"], r["intercept"], {"note": "test"})
    enc, coef, intercept, meta = rt.load_model(path)
    assert meta == {"note": "test"}
    assert enc.vocab == r["encoder"].vocab
    design = enc.transform(rt.prepare(val, feats, "val"))
    np.testing.assert_array_equal(rt.predict(design, coef, intercept), r["pred_val"])


def test_rmse_must_be_finite_positive():
    # A perfect fit (RMSE 0) is as suspicious as NaN: the smoke test refuses it.
    with pytest.raises(rt.SmokeError) as info:
        rt._check_rmse("training", 0.0)
    assert info.value.exit_code == 1
    with pytest.raises(rt.SmokeError):
        rt._check_rmse("validation", float("nan"))
    rt._check_rmse("training", 4.2)
