"""The class's box side and the student side, without AWS: templates/authorized-keys.sh run
for real on the scripted fake box (StudentKeysStep's arguments), and `join` of a bundle (the
Include line, the pin, StrictHostKeyChecking yes; a bundle with another host key is refused)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fake_target import FakeBox, summary

from mlops_env.classroom.bundle import join
from mlops_env.classroom.steps import StudentKeysStep
from mlops_env.errors import ConfigError, HostKeyError
from mlops_env.paths import get_paths
from mlops_env.ssh import knownhosts
from mlops_env.ssh.keys import generate_host_keypair


def pub(c: str) -> str:
    return generate_host_keypair(c).public_line


def run(box: FakeBox, mode: str, step: StudentKeysStep):  # type: ignore[no-untyped-def]
    return box.run("authorized-keys.sh", *step._args(mode))


def test_authorized_keys_exactly_the_wanted_ones(tmp_path: Path) -> None:
    box = FakeBox(tmp_path / "box")
    instructor, alice, other = pub("instructor"), pub("alice"), pub("someone")
    ssh = box.home / ".ssh"
    ssh.mkdir()
    (ssh / "authorized_keys").write_text(f"{instructor}\n{other}\n")
    with_instr = StudentKeysStep((alice,), instructor)
    r = run(box, "check", with_instr)
    assert r.exit_code == 1 and summary(r) == "authorized_keys: 1 key(s) to add, 1 to remove"
    assert run(box, "apply", with_instr).exit_code == 0
    lines = (ssh / "authorized_keys").read_text().splitlines()
    assert [" ".join(x.split()[:2]) for x in lines] == [" ".join(alice.split()[:2]), " ".join(instructor.split()[:2])]
    assert (ssh / "authorized_keys").stat().st_mode & 0o777 == 0o600
    assert run(box, "check", with_instr).exit_code == 0
    # instructor_access: false -> only the student's key is left
    only = StudentKeysStep((alice,), None)
    assert run(box, "check", only).exit_code == 1
    assert run(box, "apply", only).exit_code == 0
    assert [" ".join(x.split()[:2]) for x in (ssh / "authorized_keys").read_text().splitlines()] == \
        [" ".join(alice.split()[:2])]
    assert run(box, "check", only).exit_code == 0


def test_step_refuses_bad_keys_and_option_like_args(tmp_path: Path) -> None:
    with pytest.raises(Exception):  # noqa: B017,PT011 - keys.IntegrityError
        StudentKeysStep(("ssh-ed25519 AAAAnot a key",), None)
    with pytest.raises(ValueError):
        StudentKeysStep((), pub("i"))
    box = FakeBox(tmp_path / "box")
    assert box.run("authorized-keys.sh", "apply", "--key", "-oProxyCommand=x").exit_code == 2
    assert box.run("authorized-keys.sh", "apply").exit_code == 2
    assert not (box.home / ".ssh" / "authorized_keys").exists()


@pytest.fixture
def student_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("not read by join\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MLOPS_ENV_HOME", str(tmp_path / "mlops"))
    return home


def bundle(tmp_path: Path, key: str, **over: object) -> Path:
    doc = {"version": 1, "class": "c26", "student": "alice", "alias": "mlops-c26-alice", "host": "203.0.113.9",
           "port": 22, "user": "ubuntu", "host_key_alias": "mlops-env-c26-alice", "host_keys": [key],
           "forwards": [8888, 5000], "folder": "/home/ubuntu/course"}
    doc.update(over)
    p = tmp_path / "alice.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_join_installs_like_up_and_refuses_another_host_key(student_home: Path, tmp_path: Path) -> None:
    hk = pub("host")
    d = join(get_paths(), bundle(tmp_path, hk), None)
    assert d["alias"] == "mlops-c26-alice" and d["changed"]
    paths = get_paths()
    assert knownhosts.lookup(paths, "mlops-env-c26-alice") == [" ".join(hk.split()[:2])]
    cfg = paths.ssh_config.read_text()
    assert "HostKeyAlias mlops-env-c26-alice" in cfg and "StrictHostKeyChecking yes" in cfg
    assert f"IdentityFile {student_home / '.ssh' / 'id_ed25519'}" in cfg
    assert "Include" in (student_home / ".ssh" / "config").read_text()
    again = join(paths, bundle(tmp_path, hk), None)
    assert again["changed"] is False
    before = (paths.known_hosts.read_text(), paths.ssh_config.read_text())
    with pytest.raises(HostKeyError) as ei:
        join(paths, bundle(tmp_path, pub("attacker"), host="198.51.100.66"), None)
    assert ei.value.code == "host-key-changed"
    assert (paths.known_hosts.read_text(), paths.ssh_config.read_text()) == before  # nothing half-made


@pytest.mark.parametrize("over", [{"version": 2}, {"port": "22; rm -rf /"}, {"user": "root\nProxyCommand x"},
                                  {"alias": "-oProxyCommand=x"}, {"host_keys": ["ssh-ed25519 nope"]},
                                  {"extra": 1}, {"forwards": ["8888 x"]}])
def test_bad_bundles_are_refused(student_home: Path, tmp_path: Path, over: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        join(get_paths(), bundle(tmp_path, pub("h"), **over), None)
    assert not get_paths().ssh_config.exists()
