"""State records: name rules, atomic versioned writes, clear errors, and the lock."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from mlops_env.errors import BusyError, ConfigError, NotFoundError, UsageError
from mlops_env.paths import Paths
from mlops_env.state import SCHEMA, Endpoint, Record, Store, validate_name


def _paths(tmp_path: Path) -> Paths:
    return Paths(data=tmp_path, config=tmp_path, cache=tmp_path / "cache", logs=tmp_path / "logs")


@pytest.mark.parametrize("name", ["a", "course", "my-box-2", "x" * 32, "0"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "A", "a_b", "a b", "x" * 33, "../etc", "a;rm", "é"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(UsageError) as e:
        validate_name(name)
    assert e.value.code == "invalid-name"


def test_round_trip_and_permissions(tmp_path: Path) -> None:
    store = Store(_paths(tmp_path))
    rec = Record(name="w1", provider="docker", alias="mlops-w1",
                 endpoint=Endpoint("127.0.0.1", 2222, "mlops", "/k", "mlops-env-w1"))
    store.save(rec)
    p = store.path("w1")
    assert oct(p.stat().st_mode & 0o777) == "0o600"
    assert oct(p.parent.stat().st_mode & 0o777) == "0o700"
    assert json.loads(p.read_text())["schema"] == SCHEMA
    back = store.load("w1")
    assert back.endpoint == rec.endpoint and back.provider == "docker"
    assert [r.name for r in store.all()] == ["w1"]
    assert not list(p.parent.glob("*.tmp"))


def test_unknown_workstation(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as e:
        Store(_paths(tmp_path)).load("nope")
    assert e.value.code == "unknown-workstation" and "mlops-env list" in (e.value.hint or "")


def test_corrupt_and_future_files_are_clear_errors(tmp_path: Path) -> None:
    store = Store(_paths(tmp_path))
    store.save(Record(name="w1", provider="docker", alias="mlops-w1"))
    store.path("w1").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        store.load("w1")
    store.path("w1").write_text(json.dumps({"schema": SCHEMA + 1, "name": "w1"}))
    with pytest.raises(ConfigError, match="newer mlops-env"):
        store.load("w1")
    store.path("w1").write_text(json.dumps({"schema": SCHEMA, "name": "w1"}))
    with pytest.raises(ConfigError, match="malformed"):
        store.load("w1")


def _hold(data: str, ready, release) -> None:  # type: ignore[no-untyped-def]
    store = Store(Paths(data=Path(data), config=Path(data), cache=Path(data), logs=Path(data)))
    with store.lock("w1"):
        ready.set()
        release.wait(10)


def test_second_run_is_refused_while_the_lock_is_held(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path), ready, release))
    proc.start()
    try:
        assert ready.wait(20)
        with pytest.raises(BusyError, match="another mlops-env run"):
            with Store(_paths(tmp_path)).lock("w1"):
                pass
    finally:
        release.set()
        proc.join(10)
    with Store(_paths(tmp_path)).lock("w1"):  # free again
        pass


def test_option_sources_round_trip_and_old_records_load(tmp_path: Path) -> None:
    import json

    from mlops_env.paths import Paths
    from mlops_env.state import Record, Store

    store = Store(Paths(data=tmp_path / "d", config=tmp_path / "c", cache=tmp_path / "x", logs=tmp_path / "l"))
    rec = Record(name="w1", provider="docker", alias="mlops-w1", options={"smoke_test": "sample"},
                 option_sources={"smoke_test": "flag"})
    store.save(rec)
    assert store.load("w1").option_sources == {"smoke_test": "flag"}
    old = {"schema": 1, "name": "w2", "provider": "docker", "alias": "mlops-w2", "options": {"image": "x"}}
    (store.dir / "w2.json").write_text(json.dumps(old))
    assert store.load("w2").option_sources == {}
