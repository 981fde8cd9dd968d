"""Option resolution: flag > environment > config file > built-in, with sources, and clear
errors that name the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_env.config import UP_OPTIONS, resolve
from mlops_env.errors import ConfigError, UsageError


def _flags(**kw):
    return {k: kw.get(k) for k in UP_OPTIONS}


def test_defaults_when_nothing_given(tmp_path: Path) -> None:
    r = resolve(_flags(), config_path=None, default_config=tmp_path / "missing.yaml", env={})
    assert r["python_dist"] == "anaconda"
    assert r["smoke_test"] == "course"
    assert r["forward"] is True
    assert r["image"] == "ubuntu:24.04"
    assert set(r.sources.values()) == {"default"}


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("python_dist: miniconda\nsmoke-test: sample\nforward: false\nimage: debian:12\n")
    env = {"MLOPS_ENV_PYTHON_DIST": "miniforge", "MLOPS_ENV_SMOKE_TEST": "off"}
    r = resolve(_flags(python_dist="anaconda"), config_path=None, default_config=cfg, env=env)
    assert (r["python_dist"], r.sources["python_dist"]) == ("anaconda", "flag")
    assert (r["smoke_test"], r.sources["smoke_test"]) == ("off", "env MLOPS_ENV_SMOKE_TEST")
    assert (r["forward"], r.sources["forward"]) == (False, f"file {cfg}:3")
    assert r.sources["image"] == f"file {cfg}:4"
    assert r.sources["docker_source"] == "default"


def test_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        resolve(_flags(), config_path=tmp_path / "nope.yaml", default_config=tmp_path / "x", env={})


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("# comment\npython_dist: miniforge\npyhton_dist: oops\n")
    with pytest.raises(ConfigError) as e:
        resolve(_flags(), config_path=cfg, default_config=cfg, env={})
    assert f"{cfg}:3" in e.value.message and "pyhton_dist" in e.value.message
    assert "python_dist" in (e.value.hint or "")


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("python_dist: miniforge\nsmoke_test: [sample\n")
    with pytest.raises(ConfigError) as e:
        resolve(_flags(), config_path=cfg, default_config=cfg, env={})
    assert str(cfg) in e.value.message and "malformed YAML" in e.value.message
    assert ":3:" in e.value.message or ":2:" in e.value.message


def test_not_a_mapping(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        resolve(_flags(), config_path=cfg, default_config=cfg, env={})


def test_bad_value_in_file_is_config_error_with_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("python_dist: pip\n")
    with pytest.raises(ConfigError) as e:
        resolve(_flags(), config_path=cfg, default_config=cfg, env={})
    assert f"{cfg}:1" in e.value.message and "anaconda" in e.value.message


def test_bad_value_in_env_or_flag_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="MLOPS_ENV_SMOKE_TEST"):
        resolve(_flags(), config_path=None, default_config=tmp_path / "x", env={"MLOPS_ENV_SMOKE_TEST": "all"})
    with pytest.raises(UsageError, match="--conda-sha256"):
        resolve(_flags(conda_sha256="abc"), config_path=None, default_config=tmp_path / "x", env={})
    with pytest.raises(UsageError, match="--conda-installer"):
        resolve(_flags(conda_installer="ftp://x/y.sh"), config_path=None, default_config=tmp_path / "x", env={})


def test_empty_file_is_fine(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("")
    r = resolve(_flags(), config_path=cfg, default_config=cfg, env={})
    assert r["python_dist"] == "anaconda"
