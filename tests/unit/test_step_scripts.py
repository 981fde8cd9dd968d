"""The step scripts (templates/*.sh), run for real on a scripted fake target (``FakeBox``).

Every step: check on a fresh box fails with the right ``mlops:`` line; apply succeeds; check
then passes; a SECOND apply makes no mutating call (issue 2: "a second `apply` changes
nothing"). Plus each script's own edge cases, facts parsing, shellcheck and ``bash -n``.

Scripts run through ``LocalTransport(env=...).run_script`` exactly as the steps run them
(``sudo -n -H -- sh -c WRAPPER`` for root steps), with fake system commands first on PATH.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
from fake_target import (
    BASE_PACKAGES,
    COMPOSE_V1_VERSION,
    COMPOSE_V2_VERSION,
    CONDA_VERSION,
    DOCKER_APT_KEY,
    DOCKER_VERSION,
    VENV_PYTHON,
    FakeBox,
    error,
    explain,
    hint,
    namespace_ok,
    summary,
)

from mlops_env.paths import templates_dir
from mlops_env.steps import Facts, result_from_run, template
from mlops_env.steps.builtin import last_json, upload_program

SUPPORTED = ["ubuntu-22.04", "ubuntu-24.04", "debian-12"]
NS_WHY = namespace_ok()
needs_namespace = pytest.mark.skipif(
    NS_WHY is not None,
    reason=f"docker.sh --source docker writes /etc/apt and the systemd branch reads /run/systemd: "
           f"these tests need a private mount namespace for the fake box, and {NS_WHY}")


@pytest.fixture
def make_box(tmp_path: Path):
    n = 0

    def make(**kw) -> FakeBox:
        nonlocal n
        n += 1
        return FakeBox(tmp_path / f"box{n}", **kw)

    return make


@pytest.fixture
def box(make_box) -> FakeBox:
    return make_box()


def ns_or_plain(make_box, **kw) -> FakeBox:
    """A box after the base step (docker and conda need it), in its own mount namespace when
    possible (deterministic apt lists), else plain."""
    return make_box(namespace=NS_WHY is None, packages=BASE_PACKAGES, **kw)


@pytest.fixture
def ready_box(make_box) -> FakeBox:
    """A box after the base step: curl, bzip2, git ... installed."""
    return make_box(packages=BASE_PACKAGES)


DOCKER_KEY_FPR = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
needs_gpg = pytest.mark.skipif(shutil.which("gpg") is None,
                               reason="docker.sh checks Docker's apt key with gpg, which the fake box takes "
                               "from this machine: apt-get install gpg")


def other_openpgp_key(tmp_path: Path) -> bytes:
    """A real OpenPGP public key that is not Docker's (made here with gpg)."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Not Docker <x@example.invalid>",  # noqa: S603,S607
                    "ed25519", "sign", "never"], env=env, check=True, capture_output=True)
    out = subprocess.run(["gpg", "--batch", "--armor", "--export"], env=env, check=True,  # noqa: S603,S607
                         capture_output=True)
    assert out.stdout.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    return out.stdout


def assert_second_apply_changed_nothing(box: FakeBox, mark: tuple[int, int]) -> None:
    calls_at, changes_at = mark
    muts = box.mutating_calls(since=calls_at)
    assert muts == [], "second apply made mutating calls:\n" + "\n".join(map(str, muts))
    assert box.changes(since=changes_at) == []


# =========================================================================== facts
class TestFacts:
    def test_facts_on_a_supported_box(self, make_box) -> None:
        box = make_box(os_release="ubuntu-22.04")
        res = box.run("facts.sh")
        assert res.exit_code == 0, explain(res)
        f = Facts.parse(res.stdout)
        assert (f.get("os_id"), f.get("os_version"), f.get("os_codename")) == ("ubuntu", "22.04", "jammy")
        assert f.os_label == "Ubuntu 22.04.4 LTS"
        assert f.arch == platform.machine()
        assert (f.get("uid"), f.get("user"), f.home) == ("1000", "tester", str(box.home))
        assert not f.is_root
        assert f.sudo == "ok"
        assert f.get("systemd") == "0"
        assert int(f.get("nproc")) >= 1 and int(f.get("mem_kb")) > 0
        assert box.mutating_calls() == [] and box.changes() == []

    @pytest.mark.parametrize(("kw", "sudo", "user", "is_root"), [
        ({"sudo": "password"}, "password", "tester", False),
        ({"sudo": "none"}, "missing", "tester", False),
        ({"uid": 0}, "root", "root", True),
    ])
    def test_sudo_and_root(self, make_box, kw, sudo, user, is_root) -> None:
        box = make_box(**kw)
        f = Facts.parse(box.run("facts.sh").stdout)
        assert (f.sudo, f.get("user"), f.is_root) == (sudo, user, is_root)

    def test_tools_appear_with_their_packages(self, make_box) -> None:
        box = make_box()
        f = Facts.parse(box.run("facts.sh").stdout)
        assert not any(f.has(t) for t in ("curl", "bzip2", "git", "docker", "conda", "wget"))
        assert f.has("sudo") and f.has("python3")
        assert box.run("base.sh", "apply", sudo=True).exit_code == 0
        f = Facts.parse(box.run("facts.sh").stdout)
        assert all(f.has(t) for t in ("curl", "bzip2", "git")) and not f.has("docker")
        assert not Facts.parse(make_box(sudo="none").run("facts.sh").stdout).has("sudo")

    def test_debian_and_missing_os_release(self, make_box) -> None:
        f = Facts.parse(make_box(os_release="debian-12").run("facts.sh").stdout)
        assert (f.get("os_id"), f.get("os_version"), f.get("os_codename")) == ("debian", "12", "bookworm")
        assert f.os_label == "Debian GNU/Linux 12 (bookworm)"
        res = make_box(os_release=None).run("facts.sh")
        assert res.exit_code == 0
        f = Facts.parse(res.stdout)
        assert (f.get("os_id"), f.os_label) == ("", "")

    def test_parse_keeps_equals_signs_and_ignores_noise(self) -> None:
        f = Facts.parse("motd banner\nos_pretty=A=B \n  uid = 0\nnot a fact\n")
        assert f.get("os_pretty") == "A=B"
        assert f.is_root
        assert f.get("missing", "dflt") == "dflt"


# =========================================================================== base
class TestBase:
    @pytest.mark.parametrize("os_release", SUPPORTED)
    def test_check_on_a_fresh_box_names_the_missing_packages(self, make_box, os_release) -> None:
        box = make_box(os_release=os_release)
        res = box.run("base.sh", "check")
        assert res.exit_code == 1, explain(res)
        assert summary(res).split(": ", 1)[0] == "missing packages"
        assert tuple(summary(res).split(": ", 1)[1].split()) == BASE_PACKAGES
        assert box.calls("apt-get") == []

    @pytest.mark.parametrize("os_release", SUPPORTED)
    def test_apply_then_check_then_second_apply_changes_nothing(self, make_box, os_release) -> None:
        box = make_box(os_release=os_release)
        res = box.run("base.sh", "apply", sudo=True)
        assert res.exit_code == 0, explain(res)
        assert summary(res) == "base packages installed"
        apt = box.calls("apt-get")
        assert [c.uid for c in apt] == [0, 0], "apt-get must run as root (via sudo -n)"
        assert "update" in apt[0].args
        install = apt[1].args
        assert install[install.index("install"):] == ("install", "-y", "--no-install-recommends", *BASE_PACKAGES)
        assert all(box.installed(p) for p in BASE_PACKAGES)
        assert box.calls("sudo")[0].args[:4] == ("-n", "-H", "--", "sh")

        res = box.run("base.sh", "check")
        assert (res.exit_code, summary(res)) == (0, "base packages present"), explain(res)

        mark = box.mark()
        res = box.run("base.sh", "apply", sudo=True)
        assert (res.exit_code, summary(res)) == (0, "base packages present"), explain(res)
        assert_second_apply_changed_nothing(box, mark)
        assert box.calls("apt-get", since=mark[0]) == []

    def test_apply_installs_only_what_is_missing(self, box) -> None:
        box.preinstall("curl", "git", "procps")
        res = box.run("base.sh", "check")
        assert summary(res) == "missing packages: ca-certificates bzip2 util-linux"
        assert box.run("base.sh", "apply", sudo=True).exit_code == 0
        install = box.calls("apt-get")[-1].args
        assert install[install.index("--no-install-recommends") + 1:] == (
            "ca-certificates", "bzip2", "util-linux")

    @pytest.mark.parametrize(("os_release", "label"), [
        ("fedora-40", "Fedora Linux 40 (Workstation Edition)"),
        ("ubuntu-20.04", "Ubuntu 20.04.6 LTS"),
    ])
    @pytest.mark.parametrize("mode", ["check", "apply"])
    def test_unsupported_os_is_refused_without_touching_apt(self, make_box, os_release, label, mode) -> None:
        box = make_box(os_release=os_release)
        res = box.run("base.sh", mode, sudo=mode == "apply")
        assert res.exit_code == 3, explain(res)
        assert error(res) == f"unsupported OS: {label}"
        assert "Ubuntu 22.04, Ubuntu 24.04 and Debian 12" in (hint(res) or "")
        assert box.calls("apt-get", "dpkg-query") == []
        assert result_from_run(res).status == "fail"

    def test_no_os_release_is_unsupported(self, make_box) -> None:
        res = make_box(os_release=None).run("base.sh", "check")
        assert res.exit_code == 3
        assert "cannot identify the OS" in (error(res) or "")

    def test_sudo_asking_for_a_password_installs_nothing(self, make_box) -> None:
        box = make_box(sudo="password")
        res = box.run("base.sh", "apply", sudo=True)
        assert res.exit_code == 1
        assert "sudo: a password is required" in res.stderr
        assert box.calls("apt-get") == [] and box.changes() == []

    def test_failed_apt_update_stops_before_installing(self, box) -> None:
        box.set("apt-update-fails")
        res = box.run("base.sh", "apply", sudo=True)
        assert res.exit_code == 1, explain(res)
        assert summary(res) == "apt-get update"  # the last progress line says where it stopped
        # apt's own reason is the message (issue 11 item 10), not just "exit 100"
        assert error(res) == "apt-get update failed: Failed to fetch http://deb.example/dists/InRelease"
        assert "sources" in (hint(res) or "")
        assert [c.args[-1] for c in box.calls("apt-get")] == ["update"]
        assert not any(box.installed(p) for p in BASE_PACKAGES)

    def test_failed_install_says_apts_first_error_line(self, box) -> None:
        box.apt_unavailable("git")
        res = box.run("base.sh", "apply", sudo=True)
        assert res.exit_code == 1, explain(res)
        assert error(res) == f"apt-get install {' '.join(BASE_PACKAGES)} failed: Unable to locate package git"
        assert "E: Unable to locate package git" in res.stdout  # apt's output is still shown

    def test_a_failing_package_script_is_named_not_dpkgs_exit_code(self, box) -> None:
        box.postinst_fails("git")
        res = box.run("base.sh", "apply", sudo=True)
        assert res.exit_code == 1, explain(res)
        assert error(res) == (f"apt-get install {' '.join(BASE_PACKAGES)} failed: dpkg: error processing package "
                              "git (--configure): installed git package post-installation script subprocess "
                              "returned error exit status 1")

    def test_bad_usage_is_exit_2(self, box) -> None:
        res = box.run("base.sh", "frobnicate")
        assert res.exit_code == 2 and "usage" in (error(res) or "")


# =========================================================================== docker
def docker_apply(box: FakeBox, source: str = "distro", user: str = "tester"):
    return box.run("docker.sh", "apply", "--user", user, "--source", source, sudo=True)


def install_args(box: FakeBox, since: int = 0) -> list[tuple[str, ...]]:
    out = []
    for c in box.calls("apt-get", since=since):
        if "install" in c.args:
            a = c.args[c.args.index("install") + 1:]
            out.append(tuple(x for x in a if not x.startswith("-")))
    return out


class TestDocker:
    @pytest.fixture
    def box(self, ready_box) -> FakeBox:
        return ready_box

    def test_check_on_a_fresh_box(self, box) -> None:
        res = box.run("docker.sh", "check")
        assert (res.exit_code, summary(res)) == (1, "docker is not installed"), explain(res)
        assert box.mutating_calls() == []

    @pytest.mark.parametrize(("os_release", "compose_pkg", "compose_version"), [
        ("ubuntu-22.04", "docker-compose-v2", COMPOSE_V2_VERSION),
        ("ubuntu-24.04", "docker-compose-v2", COMPOSE_V2_VERSION),
        ("debian-12", "docker-compose", COMPOSE_V1_VERSION),
    ])
    def test_apply_verify_check_and_second_apply_changes_nothing(
            self, make_box, os_release, compose_pkg, compose_version) -> None:
        box = ns_or_plain(make_box, os_release=os_release)
        res = docker_apply(box)
        assert res.exit_code == 0, explain(res)
        assert summary(res) == "docker installed and running"
        # no Recommends (needrestart); the useful ones named
        assert install_args(box) == [("docker.io", "apparmor", "xz-utils", compose_pkg)]
        assert all(c.uid == 0 for c in box.calls("apt-get", "usermod"))
        assert [c.args for c in box.calls("usermod")] == [("-aG", "docker", "tester")]
        assert "docker" in box.groups("tester")
        assert box.calls("service")[0].args == ("docker", "start")  # no systemd on this box

        # Installed, but not proven until a container ran as the user (verify).
        res = box.run("docker.sh", "check")
        assert (res.exit_code, summary(res)) == (1, "no container has been run as tester yet"), explain(res)

        res = box.run("docker.sh", "verify", transport=box.transport().fresh())
        assert res.exit_code == 0, explain(res)
        assert summary(res) == "ran a container (local probe image, no registry) as tester without sudo"
        assert (box.home / ".mlops-env" / "docker-verified").is_file()

        res = box.run("docker.sh", "check")
        assert (res.exit_code, summary(res)) == (0, f"docker {DOCKER_VERSION}, compose {compose_version}"), explain(res)

        mark = box.mark()
        res = docker_apply(box)
        assert res.exit_code == 0, explain(res)
        assert_second_apply_changed_nothing(box, mark)
        assert box.calls("apt-get", "usermod", "groupadd", since=mark[0]) == []

    def test_verify_without_registry_builds_and_runs_the_local_probe(self, box) -> None:
        box.preinstall_docker()
        box.add_group("docker", "tester")
        res = box.run("docker.sh", "verify")
        assert res.exit_code == 0, explain(res)
        docker = [c.args for c in box.calls("docker")]
        assert ("pull", "-q", "hello-world") in docker  # tried, no registry
        imports = [a for a in docker if a[0] == "import"]
        assert len(imports) == 1
        assert imports[0][1:3] == ("-c", f'CMD ["{Path("/bin/echo").resolve()}", "ok"]')
        assert imports[0][-1] == "mlops-env/probe:1"
        assert ("run", "--rm", "--network", "none", "mlops-env/probe:1") in docker
        assert box.images() == ["mlops-env_probe_1"]
        assert (box.home / ".mlops-env" / "docker-verified").read_text().startswith("20")

        # A second verify reuses the probe image: no second import.
        mark = box.mark()
        assert box.run("docker.sh", "verify").exit_code == 0
        assert [c for c in box.calls("docker", since=mark[0]) if c.args[0] == "import"] == []

    def test_verify_with_a_registry_runs_hello_world(self, make_box) -> None:
        box = make_box(registry=True, packages=BASE_PACKAGES)
        box.preinstall_docker()
        box.add_group("docker", "tester")
        res = box.run("docker.sh", "verify")
        assert res.exit_code == 0, explain(res)
        assert summary(res) == "ran hello-world as tester without sudo"
        assert ("run", "--rm", "hello-world") in [c.args for c in box.calls("docker")]
        assert not any(c.args[0] == "import" for c in box.calls("docker"))

    def test_verify_fails_when_the_container_does_not_run(self, box) -> None:
        box.preinstall_docker()
        box.add_group("docker", "tester")
        box.set("docker-run-fails")
        res = box.run("docker.sh", "verify")
        assert res.exit_code == 1, explain(res)
        assert (error(res) or "").startswith("docker run failed: docker: Error response from daemon")
        assert not (box.home / ".mlops-env" / "docker-verified").exists()
        res = box.run("docker.sh", "check")
        assert summary(res) == "no container has been run as tester yet"

    def test_the_old_login_session_cannot_reach_the_daemon_a_fresh_one_can(self, box) -> None:
        old = box.transport()  # logged in before the user joined the docker group
        assert docker_apply(box).exit_code == 0
        res = box.run("docker.sh", "check", transport=old)
        assert res.exit_code == 1
        assert summary(res) == "tester cannot reach the docker daemon in this session (log out and in again)"
        res = box.run("docker.sh", "verify", transport=old)
        assert res.exit_code == 1 and "log out and in again" in (error(res) or "")
        assert box.run("docker.sh", "verify", transport=old.fresh()).exit_code == 0

    def test_check_names_each_problem(self, box) -> None:
        box.preinstall_docker(compose=False, group=False, running=False)
        res = box.run("docker.sh", "check")
        assert res.exit_code == 1
        assert summary(res).split(";") == ["docker compose is not installed", "the docker daemon is not running",
                                           "tester is not in the docker group"]

    def test_apply_starts_a_stopped_daemon_and_creates_the_group(self, make_box) -> None:
        box = ns_or_plain(make_box)
        box.preinstall_docker(group=False, running=False)
        res = docker_apply(box)
        assert res.exit_code == 0, explain(res)
        assert install_args(box) == []  # docker and compose were already there
        assert [c.args for c in box.calls("groupadd")] == [("docker",)]
        assert [c.args for c in box.calls("usermod")] == [("-aG", "docker", "tester")]
        assert "docker daemon started" in box.changes()

    def test_a_daemon_that_does_not_start_is_reported(self, make_box) -> None:
        box = ns_or_plain(make_box)
        box.set("dockerd-fails")
        box.fast_sleep()  # apply polls `docker info` for up to 60 s
        res = docker_apply(box)
        assert res.exit_code == 1, explain(res)
        assert error(res) == "the Docker engine did not start"  # no log to say why
        assert "journalctl -u docker" in (hint(res) or "")
        assert box.calls("usermod") == []
        # the start's own complaint is in the output (the tail the user sees), not swallowed
        assert "Job for docker.service failed" in res.stdout + res.stderr

    # What dockerd wrote to the journal here when its iptables failed (measured in a systemd
    # test container with a broken iptables: the arm64-under-qemu failure of TESTBED.md).
    ENGINE_JOURNAL = (
        'time="2026-12-02T07:31:43.401973389Z" level=info msg="Loading containers: start."\n'
        'time="2026-12-02T07:31:43.570846227Z" level=info msg="unable to detect if iptables supports xlock: '
        "'iptables --wait -L -n': `iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: "
        'Protocol not supported`" error="exit status 1"\n'
        'time="2026-12-02T07:31:43.591985726Z" level=info msg="stopping event stream following graceful '
        'shutdown" error="<nil>" module=libcontainerd namespace=moby\n'
        "failed to start daemon: Error initializing network controller: error obtaining controller instance: "
        "failed to create NAT chain DOCKER: iptables failed: iptables -t nat -N DOCKER: iptables v1.8.9 "
        "(nf_tables): Could not fetch rule set generation id: Protocol not supported\n"
        " (exit status 1)\n")
    ENGINE_REASON = ("Error initializing network controller: error obtaining controller instance: failed to "
                     "create NAT chain DOCKER: iptables failed: iptables -t nat -N DOCKER: iptables v1.8.9 "
                     "(nf_tables): Could not fetch rule set generation id: Protocol not supported")

    @needs_namespace
    def test_the_engines_own_last_error_from_the_journal_is_the_message(self, make_box) -> None:
        box = make_box(systemd=True, packages=BASE_PACKAGES)
        box.set("dockerd-fails")
        box.docker_journal(self.ENGINE_JOURNAL)
        box.fast_sleep()
        res = docker_apply(box)
        assert res.exit_code == 1, explain(res)
        assert error(res) == f"the Docker engine did not start: {self.ENGINE_REASON}"
        journal = box.calls("journalctl")
        assert len(journal) == 1 and "_SYSTEMD_UNIT=docker.service" in journal[0].args
        systemctl = [c.args for c in box.calls("systemctl")]
        assert systemctl[:2] == [("reset-failed", "docker"), ("enable", "--now", "docker")]
        # systemd gave up on the engine (its start limit): apply stops waiting at once
        assert len(box.calls("docker")) <= 3, [c.args for c in box.calls("docker")]
        assert box.calls("usermod") == []

    @needs_namespace
    def test_without_systemd_the_engines_log_file_says_why(self, make_box) -> None:
        box = make_box(namespace=True, packages=BASE_PACKAGES)
        box.set("dockerd-fails")
        box.fast_sleep()
        (box.var_log() / "docker.log").write_text(
            'time="2026-12-02T07:00:00Z" level=info msg="Starting up"\n'
            'time="2026-12-02T07:00:01Z" level=error msg="failed to mount overlay: invalid argument" '
            'storage-driver=overlay2\n'
            'time="2026-12-02T07:00:01Z" level=info msg="stopping event stream"\n')
        res = docker_apply(box)
        assert res.exit_code == 1, explain(res)
        assert error(res) == "the Docker engine did not start: failed to mount overlay: invalid argument"
        assert [c.args for c in box.calls("service")] == [("docker", "start")]

    def test_ubuntu_without_compose_v2_falls_back_to_compose_v1(self, make_box) -> None:
        box = ns_or_plain(make_box, os_release="ubuntu-22.04")
        box.apt_unavailable("docker-compose-v2")
        res = docker_apply(box)
        assert res.exit_code == 0, explain(res)
        assert install_args(box) == [("docker.io", "apparmor", "xz-utils", "docker-compose-v2"),
                                     ("docker.io", "apparmor", "xz-utils", "docker-compose")]
        box.run("docker.sh", "verify")
        assert summary(box.run("docker.sh", "check")) == f"docker {DOCKER_VERSION}, compose {COMPOSE_V1_VERSION}"

    def test_apply_needs_root(self, box) -> None:
        res = box.run("docker.sh", "apply", "--user", "tester")
        assert res.exit_code == 2
        assert error(res) == "docker.sh apply must run as root"
        assert box.calls("apt-get") == []

    def test_unsupported_os(self, make_box) -> None:
        box = make_box(os_release="fedora-40", packages=BASE_PACKAGES)
        res = docker_apply(box)
        assert res.exit_code == 3, explain(res)
        assert error(res) == "unsupported OS for Docker: fedora"
        assert install_args(box) == []

    @needs_namespace
    def test_apt_lists_refreshed_by_base_are_not_updated_again(self, make_box) -> None:
        box = make_box(namespace=True)
        assert box.run("base.sh", "apply", sudo=True).exit_code == 0
        mark = box.mark()
        assert docker_apply(box).exit_code == 0
        assert [c.args[-1] for c in box.calls("apt-get", since=mark[0])] == ["docker-compose-v2"]
        # ... but on a box whose lists are old (or missing), apply updates them first
        other = make_box(namespace=True, packages=BASE_PACKAGES)  # base packages from the image
        assert docker_apply(other).exit_code == 0
        assert [c.args[-1] for c in other.calls("apt-get")] == ["update", "docker-compose-v2"]

    @needs_namespace
    @needs_gpg
    @pytest.mark.parametrize(("os_release", "distro", "codename"), [
        ("ubuntu-24.04", "ubuntu", "noble"),
        ("ubuntu-22.04", "ubuntu", "jammy"),
        ("debian-12", "debian", "bookworm"),
    ])
    def test_source_docker_adds_dockers_apt_repository(self, make_box, os_release, distro, codename) -> None:
        box = make_box(os_release=os_release, namespace=True, packages=BASE_PACKAGES)
        res = docker_apply(box, source="docker")
        assert res.exit_code == 0, explain(res)
        etc_apt = box.root / "ns" / "etc-apt"
        assert (etc_apt / "sources.list.d" / "docker.list").read_text() == (
            "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
            f"https://download.docker.com/linux/{distro} {codename} stable\n")
        # Docker's key, checked (its fingerprint) before apt trusts it
        assert (etc_apt / "keyrings" / "docker.asc").read_bytes() == DOCKER_APT_KEY.read_bytes()
        assert [c.args[:2] for c in box.calls("curl")] == [("-fsSL", f"https://download.docker.com/linux/{distro}/gpg")]
        apt = box.calls("apt-get")
        assert [a.args[-1] for a in apt[:2]] == ["update", "gpg"], "gpg (to check the key) comes first"
        assert apt[2].args[-1] == "update", "the new repository's lists must be fetched before installing"
        assert install_args(box) == [("gpg",), ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin",
                                               "docker-compose-plugin")]
        assert not box.installed("docker.io")
        assert box.run("docker.sh", "verify").exit_code == 0
        mark = box.mark()
        assert docker_apply(box, source="docker").exit_code == 0
        assert_second_apply_changed_nothing(box, mark)

    @needs_namespace
    @needs_gpg
    @pytest.mark.parametrize("served", ["another key", "docker's key and another", "an error page"])
    def test_a_key_that_is_not_dockers_is_refused_before_apt_trusts_it(self, make_box, tmp_path, served) -> None:
        box = make_box(namespace=True, packages=(*BASE_PACKAGES, "gpg"))
        other = other_openpgp_key(tmp_path)
        data = {"another key": other,
                "docker's key and another": DOCKER_APT_KEY.read_bytes() + other,
                "an error page": b"<html><body>403 Forbidden (proxy)</body></html>\n"}[served]
        box.serve_docker_key(data)
        res = docker_apply(box, source="docker")
        assert res.exit_code == 8, explain(res)
        url = "https://download.docker.com/linux/ubuntu/gpg"
        msg = error(res) or ""
        assert msg.startswith(f"the key from {url} is not Docker's apt key: it has ")
        assert msg.endswith(f", expected {DOCKER_KEY_FPR}")
        if served == "an error page":
            assert "no OpenPGP key" in msg
        else:
            assert "fingerprint " in msg and msg.count(DOCKER_KEY_FPR) == (2 if "docker's" in served else 1)
        assert "nothing was installed" in (hint(res) or "")
        etc_apt = box.root / "ns" / "etc-apt"
        assert not (etc_apt / "keyrings" / "docker.asc").exists()
        assert not (etc_apt / "sources.list.d" / "docker.list").exists()
        assert box.calls("apt-get") == [] and not box.installed("docker-ce")

    @needs_namespace
    def test_systemd_box_uses_systemctl(self, make_box) -> None:
        box = make_box(systemd=True, packages=BASE_PACKAGES)
        res = docker_apply(box)
        assert res.exit_code == 0, explain(res)
        assert [c.args for c in box.calls("systemctl")] == [("reset-failed", "docker"), ("enable", "--now", "docker")]
        assert box.calls("service", "pgrep") == []
        assert box.run("docker.sh", "verify").exit_code == 0
        mark = box.mark()
        res = box.run("docker.sh", "check")
        assert res.exit_code == 0, explain(res)
        assert ("is-active", "--quiet", "docker") in [c.args for c in box.calls("systemctl", since=mark[0])]
        box.set("dockerd-running", False)
        assert "the docker daemon is not running" in summary(box.run("docker.sh", "check"))


# =========================================================================== conda
PREFIX = "~/miniforge3"


def conda(box: FakeBox, mode: str, *args: str, prefix: str = PREFIX, dist: str = "miniforge"):
    return box.run("conda.sh", mode, "--prefix", prefix, "--dist", dist, *args)


def conda_apply(box: FakeBox, standin, *args: str, dist: str = "miniforge", tos: str = "0",
                prefix: str = PREFIX, sha256: str | None = None):
    return conda(box, "apply", "--url", standin.url, "--sha256", sha256 or standin.sha256, "--tos", tos,
                 *args, prefix=prefix, dist=dist)


def cache_dir(box: FakeBox) -> Path:
    return box.home / ".cache" / "mlops-env" / "installers"


class TestConda:
    @pytest.fixture
    def box(self, ready_box) -> FakeBox:
        return ready_box

    def test_check_on_a_fresh_box(self, box) -> None:
        res = conda(box, "check")
        assert res.exit_code == 1
        assert summary(res) == f"conda not installed in {box.home}/miniforge3"
        assert box.mutating_calls() == []

    def test_install_init_and_check_with_the_real_libraries(self, box) -> None:
        """PREFIX/bin/python is the test venv's Python: apply really imports numpy, pandas,
        pyarrow and scikit-learn before it reports success."""
        standin = box.standin_installer(python="venv")
        res = conda_apply(box, standin)
        assert res.exit_code == 0, explain(res)
        prefix = box.home / "miniforge3"
        assert summary(res) == f"conda {CONDA_VERSION} in {prefix}"
        assert [c.args for c in box.calls("conda-installer")] == [("-b", "-p", str(prefix))]
        assert [c.args[-1] for c in box.calls("curl")] == [standin.url]
        assert (cache_dir(box) / standin.path.name).read_bytes() == standin.path.read_bytes()
        bashrc = (box.home / ".bashrc").read_text()
        assert bashrc.count("# >>> conda initialize >>>") == 1
        assert not any(c.args[:1] == ("install",) for c in box.calls("conda"))
        res = conda(box, "check")
        assert (res.exit_code, summary(res)) == (0, f"conda {CONDA_VERSION} in {prefix}"), explain(res)

    def test_real_python_probe_sees_a_missing_library(self, box) -> None:
        standin = box.standin_installer(python="venv", missing=["sklearn"])
        subprocess.run(["bash", str(standin.path), "-b", "-p", str(box.home / "miniforge3")],  # noqa: S603
                       env=box.env(), check=True, capture_output=True)
        (box.home / ".bashrc").write_text("# >>> conda initialize >>>\n")
        res = conda(box, "check")
        assert (res.exit_code, summary(res)) == (1, "base env cannot import: sklearn"), explain(res)

    def test_second_apply_does_not_download_or_install_again(self, box) -> None:
        standin = box.standin_installer()
        assert conda_apply(box, standin).exit_code == 0
        mark = box.mark()
        res = conda_apply(box, standin)
        assert res.exit_code == 0, explain(res)
        assert_second_apply_changed_nothing(box, mark)
        assert box.calls("conda-installer", "curl", since=mark[0]) == []
        assert (box.home / ".bashrc").read_text().count("# >>> conda initialize >>>") == 1

    def test_a_removed_install_is_reinstalled_from_the_cached_installer(self, box) -> None:
        standin = box.standin_installer()
        assert conda_apply(box, standin).exit_code == 0
        shutil.rmtree(box.home / "miniforge3")
        mark = box.mark()
        res = conda_apply(box, standin)
        assert res.exit_code == 0, explain(res)
        assert box.calls("curl", since=mark[0]) == []
        assert "installer cached" in res.stderr
        assert len(box.calls("conda-installer", since=mark[0])) == 1

    def test_wrong_sha256_installs_nothing_and_leaves_no_partial_file(self, box) -> None:
        standin = box.standin_installer()
        res = conda_apply(box, standin, sha256="0" * 64)
        assert res.exit_code == 8, explain(res)
        assert (error(res) or "").startswith(f"checksum mismatch for {standin.url}: expected {'0' * 64}, got {standin.sha256}")
        assert "nothing was installed" in (hint(res) or "")
        assert box.calls("conda-installer") == []
        assert not (box.home / "miniforge3").exists()
        assert list(cache_dir(box).iterdir()) == []

    @pytest.mark.parametrize("dist", ["anaconda", "miniconda"])
    def test_terms_of_service_must_be_accepted(self, box, dist) -> None:
        standin = box.standin_installer()
        res = conda_apply(box, standin, dist=dist, tos="0", prefix=f"~/{dist}3")
        assert res.exit_code == 4, explain(res)
        assert "terms of service" in (error(res) or "")
        assert "miniforge" in (hint(res) or "")
        assert box.calls("curl", "conda-installer") == []

    def test_anaconda_with_accepted_terms(self, box) -> None:
        standin = box.standin_installer("Anaconda3-STANDIN-Linux-x86_64.sh")
        res = conda_apply(box, standin, dist="anaconda", tos="1", prefix="~/anaconda3")
        assert res.exit_code == 0, explain(res)
        accepted = [c.args for c in box.calls("conda") if c.args[:2] == ("tos", "accept")]
        assert accepted == [("tos", "accept", "--override-channels", "--channel", "https://repo.anaconda.com/pkgs/main"),
                            ("tos", "accept", "--override-channels", "--channel", "https://repo.anaconda.com/pkgs/r")]
        mark_file = box.home / "anaconda3" / ".mlops-env-tos-accepted"
        assert mark_file.is_file()
        assert conda(box, "check", prefix="~/anaconda3", dist="anaconda").exit_code == 0
        mark_file.unlink()
        res = conda(box, "check", prefix="~/anaconda3", dist="anaconda")
        assert (res.exit_code, summary(res)) == (1, "Anaconda terms of service not accepted")

    def test_accepted_terms_with_a_conda_without_the_tos_command(self, box) -> None:
        standin = box.standin_installer("Miniconda3-STANDIN-Linux-x86_64.sh")
        (box.home / "miniconda3").mkdir()
        (box.home / "miniconda3" / ".standin-no-tos").touch()  # an older conda: no `conda tos`
        res = conda_apply(box, standin, dist="miniconda", tos="1", prefix="~/miniconda3")
        assert res.exit_code == 0, explain(res)
        assert not any(c.args[:2] == ("tos", "accept") for c in box.calls("conda"))
        assert (box.home / "miniconda3" / ".mlops-env-tos-accepted").is_file()

    def test_miniforge_needs_no_terms(self, box) -> None:
        standin = box.standin_installer()
        assert conda_apply(box, standin, tos="0").exit_code == 0
        assert not any(c.args[:1] == ("tos",) for c in box.calls("conda"))
        assert not (box.home / "miniforge3" / ".mlops-env-tos-accepted").exists()

    def test_half_installed_prefix_is_updated_with_u(self, box) -> None:
        prefix = box.home / "miniforge3"
        (prefix / "pkgs").mkdir(parents=True)  # an interrupted install: no bin/conda
        res = conda(box, "check")
        assert summary(res) == f"conda not installed in {prefix}"
        standin = box.standin_installer()
        res = conda_apply(box, standin)
        assert res.exit_code == 0, explain(res)
        assert [c.args for c in box.calls("conda-installer")] == [("-b", "-u", "-p", str(prefix))]
        assert conda(box, "check").exit_code == 0
        # the run says at once that it is installing (issue 16 item 10), not only later
        first = next(ln for ln in res.stdout.splitlines() if ln.startswith("mlops: "))
        assert first == f"mlops: installing miniforge into {prefix} (resuming an interrupted install)"

    def test_an_install_still_running_from_an_earlier_run_is_waited_for_and_said(self, box) -> None:
        """An interrupted `up` leaves its remote install running: the next apply waits for its
        lock, and says so right away instead of showing a stale "conda not installed"."""
        import fcntl
        import threading

        standin = box.standin_installer()
        (box.home / ".mlops-env").mkdir()
        lock = (box.home / ".mlops-env" / "conda.lock").open("w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        lines: list[str] = []
        seen = threading.Event()

        def on_line(line: str) -> None:
            lines.append(line)
            if "waiting" in line:
                seen.set()

        result = {}
        t = threading.Thread(target=lambda: result.update(res=box.transport().run_script(
            template("conda.sh"), ("apply", "--prefix", PREFIX, "--dist", "miniforge", "--url", standin.url,
                                   "--sha256", standin.sha256, "--tos", "0"), on_line=on_line, timeout=120)))
        t.start()
        try:
            assert seen.wait(60), lines
            assert lines[0] == "mlops: installing miniforge: an earlier run's install is still going on the box; waiting for it"
            assert box.calls("conda-installer") == []
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
            t.join(120)
        assert result["res"].exit_code == 0, explain(result["res"])

    def test_vendor_sha256_file(self, box) -> None:
        standin = box.standin_installer()
        sums = standin.path.with_name(standin.path.name + ".sha256")
        sums.write_text(f"{standin.sha256}  {standin.path.name}\n")
        res = conda(box, "apply", "--url", standin.url, "--sha256-url", sums.as_uri(), "--tos", "0")
        assert res.exit_code == 0, explain(res)
        assert [c.args[-1] for c in box.calls("curl")] == [sums.as_uri(), standin.url]

    def test_vendor_sha256_file_that_does_not_match(self, box) -> None:
        standin = box.standin_installer()
        sums = standin.path.with_name("wrong.sha256")
        sums.write_text(f"{'ab' * 32}  {standin.path.name}\n")
        res = conda(box, "apply", "--url", standin.url, "--sha256-url", sums.as_uri(), "--tos", "0")
        assert res.exit_code == 8, explain(res)
        assert (error(res) or "").startswith("checksum mismatch")
        assert box.calls("conda-installer") == [] and list(cache_dir(box).iterdir()) == []

    @pytest.mark.parametrize("content", ["z" * 64, "0123456789abcdef" * 3 + "0123456789abcdeg", "a" * 63 + " ",
                                         "<!DOCTYPE html>" + "x" * 49])
    def test_vendor_sha256_file_that_is_not_a_sha256_is_refused(self, box, content) -> None:
        """A fetched checksum must be exactly 64 hex digits (a 64-character non-hex value
        passed the old length-only check)."""
        standin = box.standin_installer()
        sums = standin.path.with_name("bad.sha256")
        sums.write_text(f"{content}  {standin.path.name}\n")
        res = conda(box, "apply", "--url", standin.url, "--sha256-url", sums.as_uri(), "--tos", "0")
        assert res.exit_code == 8, explain(res)
        assert (error(res) or "").startswith(f"the vendor's checksum file {sums.as_uri()} holds no sha256 "
                                             "(64 hex digits)")
        assert "nothing was installed" in (hint(res) or "")
        assert [c.args[-1] for c in box.calls("curl")] == [sums.as_uri()], "the installer must not be downloaded"
        assert box.calls("conda-installer") == [] and not (box.home / "miniforge3").exists()

    def test_vendor_sha256_in_upper_case_is_accepted(self, box) -> None:
        standin = box.standin_installer()
        sums = standin.path.with_name(standin.path.name + ".sha256")
        sums.write_text(f"{standin.sha256.upper()}  {standin.path.name}\n")
        res = conda(box, "apply", "--url", standin.url, "--sha256-url", sums.as_uri(), "--tos", "0")
        assert res.exit_code == 0, explain(res)

    def test_vendor_sha256_file_missing(self, box) -> None:
        standin = box.standin_installer()
        missing = standin.path.with_name("nope.sha256").as_uri()
        res = conda(box, "apply", "--url", standin.url, "--sha256-url", missing, "--tos", "0")
        assert res.exit_code == 4, explain(res)
        assert error(res) == f"cannot fetch the vendor's checksum from {missing}"
        assert box.calls("conda-installer") == []

    def test_download_failure_is_a_prerequisite_error(self, box) -> None:
        standin = box.standin_installer()
        url = "https://repo.example.invalid/Miniforge3-Linux-x86_64.sh"
        res = conda(box, "apply", "--url", url, "--sha256", standin.sha256, "--tos", "0")
        assert res.exit_code == 4, explain(res)
        assert error(res) == f"download of {url} failed"
        assert "--conda-installer" in (hint(res) or "")
        assert not any(p.name.endswith(".part") for p in cache_dir(box).iterdir())

    def test_missing_library_is_installed_into_base(self, box) -> None:
        standin = box.standin_installer(missing=["sklearn", "pyarrow"])
        res = conda_apply(box, standin)
        assert res.exit_code == 0, explain(res)
        installs = [c.args for c in box.calls("conda") if c.args[:1] == ("install",)]
        assert installs == [("install", "-y", "-n", "base", "numpy", "pandas", "pyarrow", "scikit-learn")]
        assert conda(box, "check").exit_code == 0

    def test_missing_library_and_init_are_repaired_without_reinstalling(self, box) -> None:
        standin = box.standin_installer()
        assert conda_apply(box, standin).exit_code == 0
        (box.home / ".bashrc").write_text("# the user's own bashrc\n")
        (box.home / "miniforge3" / ".standin-missing-modules").write_text("pandas\n")
        res = conda(box, "check")
        assert summary(res) == "conda init bash not done;base env cannot import: pandas"
        mark = box.mark()
        res = conda_apply(box, standin, "--packages", "pandas")
        assert res.exit_code == 0, explain(res)
        assert box.calls("conda-installer", "curl", since=mark[0]) == []
        conda_calls = [c.args for c in box.calls("conda", since=mark[0]) if c.args[0] in ("init", "install")]
        assert conda_calls == [("init", "bash"), ("install", "-y", "-n", "base", "pandas")]
        assert (box.home / ".bashrc").read_text().startswith("# the user's own bashrc\n")

    def test_an_interrupted_download_is_resumed(self, box) -> None:
        standin = box.standin_installer()
        cache_dir(box).mkdir(parents=True)
        part = cache_dir(box) / (standin.path.name + ".part")
        part.write_bytes(standin.path.read_bytes()[:1000])
        res = conda_apply(box, standin)
        assert res.exit_code == 0, explain(res)
        curls = box.calls("curl")
        assert len(curls) == 1 and ("-C", "-") == curls[0].args[curls[0].args.index("-C"):][:2]
        assert not part.exists()
        assert (cache_dir(box) / standin.path.name).read_bytes() == standin.path.read_bytes()

    def test_a_stale_partial_download_is_not_fatal(self, box) -> None:
        standin = box.standin_installer()
        cache_dir(box).mkdir(parents=True)
        (cache_dir(box) / (standin.path.name + ".part")).write_bytes(b"an older build, cut off" * 50)
        res = conda_apply(box, standin)
        assert res.exit_code == 0, explain(res)

    def test_a_failing_installer_is_named_in_the_error(self, box) -> None:
        from mlops_env.errors import MlopsError, StepFailed
        from mlops_env.steps import raise_for_script

        broken = box.mirror / "Failing-STANDIN.sh"
        broken.write_text("#!/bin/bash\n# STAND-IN installer that fails\necho 'ERROR: out of disk' >&2\nexit 3\n")
        import hashlib

        sha = hashlib.sha256(broken.read_bytes()).hexdigest()
        res = conda(box, "apply", "--url", broken.as_uri(), "--sha256", sha, "--tos", "0")
        assert res.exit_code == 1, explain(res)  # 3 would read as "unsupported OS"
        with pytest.raises(MlopsError) as exc:
            raise_for_script("conda", res)
        assert type(exc.value) is StepFailed
        assert "installer" in exc.value.message and "downloading" not in exc.value.message

    def test_installer_that_leaves_no_conda(self, box) -> None:
        broken = box.mirror / "Broken-STANDIN.sh"
        broken.write_text("#!/bin/bash\n# STAND-IN installer that installs nothing\nexit 0\n")
        import hashlib

        sha = hashlib.sha256(broken.read_bytes()).hexdigest()
        res = conda(box, "apply", "--url", broken.as_uri(), "--sha256", sha, "--tos", "0")
        assert res.exit_code == 1
        assert "does not run" in (error(res) or "")

    @pytest.mark.parametrize("prefix", ["miniforge3", "./x", ""])
    def test_bad_prefix_is_usage_error(self, box, prefix) -> None:
        res = conda(box, "check", prefix=prefix)
        assert res.exit_code == 2, explain(res)


# =========================================================================== smoke
SAMPLE_KEY = "sample:~/miniforge3/bin/python"


@pytest.fixture(scope="module")
def smoked(tmp_path_factory):
    """One box where the REAL ridetrain program ran with the venv's Python (``--sample``)."""
    box = FakeBox(tmp_path_factory.mktemp("smoke") / "box")
    upload_program(box.transport())
    res = box.run("smoke.sh", "apply", "--key", SAMPLE_KEY, "--python", VENV_PYTHON, "--", "--sample")
    return box, res


def stub_python(box: FakeBox, body: str) -> str:
    """A stand-in python under ~/stub/bin that records its arguments and runs ``body``."""
    p = box.home / "stub" / "bin" / "python"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" >>"$HOME/stub/args"\n{body}\n')
    p.chmod(0o755)
    return "~/stub/bin/python"


def stamp(box: FakeBox) -> Path:
    return box.home / ".mlops-env" / "smoke" / "passed"


class TestSmoke:
    @pytest.fixture
    def box(self, ready_box) -> FakeBox:
        return ready_box

    def test_check_without_stamp(self, box) -> None:
        res = box.run("smoke.sh", "check", "--key", SAMPLE_KEY)
        assert (res.exit_code, summary(res)) == (1, "smoke test has not passed on this box yet")

    def test_apply_trains_and_prints_the_envelope(self, smoked) -> None:
        box, res = smoked
        assert res.exit_code == 0, explain(res)
        report = last_json(res.stdout)
        assert report is not None, res.stdout
        assert (report["status"], report["exit_code"], report["errors"]) == ("ok", 0, [])
        assert report["data"]["synthetic"] is True
        assert report["data"]["rmse_val"] > 0
        assert stamp(box).read_text() == SAMPLE_KEY
        assert (box.home / ".mlops-env" / "smoke" / "report" / "smoke-report.json").is_file()

    def test_check_passes_with_the_same_key_only(self, smoked) -> None:
        box, _ = smoked
        res = box.run("smoke.sh", "check", "--key", SAMPLE_KEY)
        assert (res.exit_code, summary(res)) == (0, f"smoke test passed ({SAMPLE_KEY})")
        res = box.run("smoke.sh", "check", "--key", "course:~/miniforge3/bin/python")
        assert res.exit_code == 1

    def test_run_mode_does_not_write_the_stamp(self, box) -> None:
        upload_program(box.transport())
        res = box.run("smoke.sh", "run", "--python", VENV_PYTHON, "--", "--sample")
        assert res.exit_code == 0, explain(res)
        assert last_json(res.stdout)["status"] == "ok"
        assert not stamp(box).exists()

    def test_arguments_reach_the_program_and_python_may_start_with_tilde(self, box) -> None:
        upload_program(box.transport())
        py = stub_python(box, 'echo \'{"status": "ok", "exit_code": 0, "data": {}, "errors": []}\'')
        res = box.run("smoke.sh", "apply", "--key", "k1", "--python", py, "--", "--sample", "--features", "a b")
        assert res.exit_code == 0, explain(res)
        args = (box.home / "stub" / "args").read_text().splitlines()
        home = str(box.home)
        assert args == [f"{home}/.mlops-env/ridetrain.py", "--sample", "--features", "a b",
                        "--report-dir", f"{home}/.mlops-env/smoke/report",
                        "--cache-dir", f"{home}/.cache/mlops-env/tlc", "--json"]
        assert stamp(box).read_text() == "k1"
        # apply always trains (the check is what keeps `up` from training again): a second
        # apply runs the program again and keeps the stamp
        res = box.run("smoke.sh", "apply", "--key", "k1", "--python", py, "--", "--sample")
        assert res.exit_code == 0
        assert stamp(box).read_text() == "k1"

    def test_failing_training_leaves_no_stamp(self, box) -> None:
        upload_program(box.transport())
        stamp(box).parent.mkdir(parents=True)
        stamp(box).write_text("sample:old")  # an earlier pass must not survive a failed run
        py = stub_python(box, 'echo \'{"status": "error", "exit_code": 8, "errors": [{"code": "data-unusable", '
                              '"message": "bad data", "hint": null}]}\'; exit 8')
        res = box.run("smoke.sh", "apply", "--key", "sample:old", "--python", py, "--", "--sample")
        assert res.exit_code == 8, explain(res)
        assert not stamp(box).exists()
        assert last_json(res.stdout)["errors"][0]["message"] == "bad data"
        assert box.run("smoke.sh", "check", "--key", "sample:old").exit_code == 1

    def test_missing_python_or_program(self, box) -> None:
        res = box.run("smoke.sh", "apply", "--key", "k", "--python", "~/nope/bin/python", "--", "--sample")
        assert res.exit_code == 1
        assert error(res) == f"python not found at {box.home}/nope/bin/python"
        res = box.run("smoke.sh", "apply", "--key", "k", "--python", VENV_PYTHON, "--", "--sample")
        assert res.exit_code == 1
        assert error(res) == f"training program not found at {box.home}/.mlops-env/ridetrain.py"
        assert box.run("smoke.sh", "apply", "--python", VENV_PYTHON).exit_code == 2  # --key required


# =========================================================================== lint
SCRIPTS = sorted(p.name for p in templates_dir().glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_bash_syntax(script: str) -> None:
    res = subprocess.run(["bash", "-n", str(templates_dir() / script)],  # noqa: S603, S607
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck is not installed (apt-get install shellcheck)")
def test_shellcheck_clean_at_warning_level() -> None:
    res = subprocess.run(["shellcheck", "-S", "warning", "-f", "json1",  # noqa: S603, S607
                          *(str(templates_dir() / s) for s in SCRIPTS)],
                         capture_output=True, text=True, check=False)
    found = json.loads(res.stdout or '{"comments": []}')["comments"]
    assert found == [], "\n".join(f"{c['file']}:{c['line']}: SC{c['code']} {c['message']}" for c in found)
    assert SCRIPTS, "no templates found"


# =========================================================================== shared libraries
def test_library_includes_are_inlined_for_the_box() -> None:
    """A script reaches a box on stdin, alone: template() replaces each `. .../lib/X.sh` line by
    the library's text, so apt's reason is computed by one function for base.sh and docker.sh."""
    from mlops_env.steps import template

    lib = (templates_dir() / "lib" / "apt.sh").read_text()
    for script in ("base.sh", "docker.sh"):
        raw = (templates_dir() / script).read_text()
        assert '. "${BASH_SOURCE[0]%/*}/lib/apt.sh"' in raw
        assert "apt_reason() {" not in raw  # defined once, in the library
        sent = template(script)
        assert not [ln for ln in sent.splitlines() if ln.startswith(". ")]  # nothing left to source
        assert sent.count("apt_reason() {") == 1 and lib.rstrip("\n") in sent


def test_a_library_include_also_works_from_the_checkout(tmp_path: Path) -> None:
    """Run as a file (doctor.sh-style tests, a developer), the include sources the library."""
    res = subprocess.run(["bash", "-c", f'. {templates_dir() / "lib" / "apt.sh"}; declare -F apt_get apt_reason mlops_tmpdir'],  # noqa: S603, S607
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0 and res.stdout.split() == ["apt_get", "apt_reason", "mlops_tmpdir"]
