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


def test_the_workstation_sits_between_env_and_the_config_file(tmp_path: Path) -> None:
    """Issue 16 item 3: how a workstation was made is the default of its next `up`; a flag and
    the environment still override it, and it overrides the general config file."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("smoke_test: off\nimage: debian:12\ndocker_source: docker\n")
    saved = {"smoke_test": "sample", "image": "mine:1", "python_dist": "miniforge", "forward": True,
             "docker_source": "distro"}
    sources = {"smoke_test": "flag", "image": "env MLOPS_ENV_IMAGE", "python_dist": f"file {cfg}:9",
               "forward": "default", "docker_source": "default"}
    r = resolve(_flags(python_dist="anaconda"), config_path=None, default_config=cfg,
                env={"MLOPS_ENV_IMAGE": "env:2"}, workstation=saved, workstation_sources=sources)
    assert (r["smoke_test"], r.sources["smoke_test"]) == ("sample", "from the workstation")
    assert (r["image"], r.sources["image"]) == ("env:2", "env MLOPS_ENV_IMAGE")
    assert (r["python_dist"], r.sources["python_dist"]) == ("anaconda", "flag")
    # a value that was a built-in default then is no choice: the config file applies
    assert (r["docker_source"], r.sources["docker_source"]) == ("docker", f"file {cfg}:3")
    assert r.sources["forward"] == "default"


def test_a_record_without_sources_counts_every_value_as_chosen(tmp_path: Path) -> None:
    r = resolve(_flags(), config_path=None, default_config=tmp_path / "none.yaml", env={},
                workstation={"smoke_test": "sample", "region": None}, workstation_sources={})
    assert (r["smoke_test"], r.sources["smoke_test"]) == ("sample", "from the workstation")
    assert r.sources["region"] == "default"


def test_a_bad_saved_value_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="the workstation's saved option 'smoke_test'"):
        resolve(_flags(), config_path=None, default_config=tmp_path / "none.yaml", env={},
                workstation={"smoke_test": "sometimes"}, workstation_sources={"smoke_test": "flag"})


def test_options_apply_to_their_providers() -> None:
    from mlops_env.config import applies

    assert applies("image", "docker") and not applies("image", "ec2") and not applies("image", "ssh")
    assert applies("region", "ec2") and not applies("region", "docker")
    assert applies("repo", "codespace") and not applies("repo", "docker")
    assert all(applies(k, p) for k in ("python_dist", "smoke_test", "forward") for p in ("docker", "ssh", "ec2"))
    assert not applies("conda_installer", "codespace")


@pytest.mark.parametrize("user", ["mlops", "_svc", "a-b_c9", "machine$", "a" * 32])
def test_docker_user_names_useradd_accepts(tmp_path: Path, user: str) -> None:
    r = resolve(_flags(user=user), config_path=None, default_config=tmp_path / "none.yaml", env={})
    assert r["user"] == user


@pytest.mark.parametrize("user", ["Mlops", "9lives", "-x", "a b", "a;rm -rf /", "a$b", "a" * 33, "", "é"])
def test_docker_user_names_useradd_refuses_are_refused_before_anything(tmp_path: Path, user: str) -> None:
    """Issue 11 item 5: `useradd`'s default NAME_REGEX and 32-character limit."""
    with pytest.raises(UsageError, match="--user"):
        resolve(_flags(user=user), config_path=None, default_config=tmp_path / "none.yaml", env={})


def test_repo_url_in_the_file_is_the_course_repository_to_clone(tmp_path: Path) -> None:
    """`repo: URL` (the roster's spelling) clones it on the box; `repo: OWNER/REPO` stays the
    codespace's repository; both `repo: URL` and `clone:` is one error naming the line."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("python_dist: miniforge\nrepo: https://github.com/DataTalksClub/mlops-zoomcamp\n")
    r = resolve(_flags(), config_path=cfg, default_config=cfg, env={})
    assert (r["clone"], r.sources["clone"]) == ("https://github.com/DataTalksClub/mlops-zoomcamp", f"file {cfg}:2")
    assert r["repo"] is None
    cfg.write_text("repo: DataTalksClub/mlops-zoomcamp\n")
    r = resolve(_flags(), config_path=cfg, default_config=cfg, env={})
    assert (r["repo"], r["clone"]) == ("DataTalksClub/mlops-zoomcamp", None)
    cfg.write_text("clone: git@github.com:a/b.git\nrepo: https://github.com/a/c\n")
    with pytest.raises(ConfigError) as e:
        resolve(_flags(), config_path=cfg, default_config=cfg, env={})
    assert e.value.message.startswith(f"{cfg}:2: both `repo: https://github.com/a/c` and `clone:`")
    cfg.write_text("repo: ftp://h/x\n")
    with pytest.raises(ConfigError) as e:
        resolve(_flags(), config_path=cfg, default_config=cfg, env={})
    assert e.value.message.startswith(f"{cfg}:1: key 'repo': expected an https://")
