"""Defaults for ``up`` options: flag > environment > the workstation > config file > built-in.

"The workstation" is how an existing workstation was made: the options its earlier ``up``
chose (by flag, environment, config file or an answer; not the built-in defaults) are the
defaults of its later runs, so ``up NAME`` without the first run's flags changes nothing.

The config file is YAML (``config.yaml`` in the platformdirs config dir, or ``--config FILE``)
with flat keys named like the options (``python_dist`` or ``python-dist``)::

    python_dist: miniforge
    smoke_test: sample
    forward: false

Environment variables are ``MLOPS_ENV_<OPTION>`` (``MLOPS_ENV_PYTHON_DIST=miniforge``).
Every value is validated where it is read; errors name the file, line and key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_env.durations import format_duration, parse_duration, parse_hours
from mlops_env.errors import ConfigError, UsageError


def option_idle_stop(v: Any) -> str:
    """Converter for the ``idle_stop`` ``up`` option: validated, kept as text (``60m``, ``off``)."""
    return format_duration(parse_duration(v))


def option_max_hours(v: Any) -> float:
    """Converter for the ``max_hours`` ``up`` option: hours (0 = no cap)."""
    return parse_hours(v) / 3600


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in {"1", "true", "yes", "on"}:
        return True
    if s in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {v!r}")


def _choice(*choices: str) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        s = str(v).strip()
        if s not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {v!r}")
        return s

    return conv


def _user(v: Any) -> str:
    """useradd's default NAME_REGEX, and its 32-character limit."""
    import re

    s = _str(v).strip()
    if not re.fullmatch(r"[a-z_][a-z0-9_-]*[$]?", s) or len(s) > 32:
        raise ValueError(f"expected a Linux user name (a-z, 0-9, '_', '-', starting with a letter or '_', "
                         f"at most 32 characters), got {v!r}")
    return s


def _str(v: Any) -> str:
    if isinstance(v, (dict, list)) or v is None:
        raise ValueError(f"expected a string, got {v!r}")
    return str(v)


def _sha256(v: Any) -> str:
    s = str(v).strip().lower()
    if len(s) != 64 or any(c not in "0123456789abcdef" for c in s):
        raise ValueError("expected 64 hexadecimal characters (a sha256)")
    return s


def _url(v: Any) -> str:
    s = str(v).strip()
    if not s.startswith(("https://", "http://", "file:///")):
        raise ValueError("expected an http(s):// URL or a file:/// path on the box")
    if any(c.isspace() for c in s):
        raise ValueError("URL must not contain whitespace")
    return s


def _git_url(v: Any) -> str:
    from mlops_env.gitrepo import check_url

    return check_url(v)


def _clone_dir(v: Any) -> str:
    from mlops_env.gitrepo import check_dir

    return check_dir(v)


def _seconds(v: Any) -> int:
    n = int(v)
    if not 1 <= n <= 3600:
        raise ValueError("expected 1..3600 seconds")
    return n


def _pattern(regex: str, what: str) -> Callable[[Any], str]:
    import re

    rx = re.compile(regex)

    def conv(v: Any) -> str:
        s = _str(v).strip()
        if not rx.match(s):
            raise ValueError(f"expected {what}, got {v!r}")
        return s

    return conv


def _disk_gb(v: Any) -> int:
    n = int(v)
    if not 20 <= n <= 2000:
        raise ValueError("expected 20..2000 GB (the course needs about 20 GB: Anaconda, Docker images, data)")
    return n


def _cidr(v: Any) -> str:
    import ipaddress

    s = _str(v).strip()
    try:
        return str(ipaddress.ip_network(s, strict=True))
    except ValueError as e:
        raise ValueError(f"expected a CIDR such as 203.0.113.7/32 ({e})") from None


def _minutes(lo: int, hi: int, what: str) -> Callable[[Any], int]:
    """A duration (``30m``, ``4h``, ``7d``; a bare number is minutes) as minutes in lo..hi."""
    import re

    def conv(v: Any) -> int:
        m = re.fullmatch(r"\s*(\d{1,6})\s*([mhd]?)\s*", _str(v).lower())
        if not m:
            raise ValueError(f"expected a duration such as 30m, 4h or 7d, got {v!r}")
        n = int(m.group(1)) * {"": 1, "m": 1, "h": 60, "d": 1440}[m.group(2)]
        if not lo <= n <= hi:
            raise ValueError(f"{what} must be between {_fmt_minutes(lo)} and {_fmt_minutes(hi)}, got {v!r}")
        return n

    return conv


def _fmt_minutes(n: int) -> str:
    return f"{n // 1440}d" if n and n % 1440 == 0 else f"{n // 60}h" if n and n % 60 == 0 else f"{n}m"


BOOTSTRAP = ("docker", "ssh", "ec2")  # the providers whose boxes `up` installs software on


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    convert: Callable[[Any], Any]
    help: str
    providers: tuple[str, ...] = BOOTSTRAP  # where the option means something (--dry-run lists those)


UP_OPTIONS: dict[str, Option] = {o.name: o for o in [
    Option("image", "ubuntu:24.04", _str, "docker: base image of the workstation container", providers=("docker",)),
    Option("user", "mlops", _user, "docker: login user created in the container", providers=("docker",)),
    Option("python_dist", "anaconda", _choice("anaconda", "miniconda", "miniforge"),
           "Python distribution to install", providers=(*BOOTSTRAP, "codespace")),
    Option("accept_anaconda_tos", False, _bool,
           "accept Anaconda's terms of service (anaconda/miniconda)"),
    Option("conda_installer", None, _url, "installer URL replacing the pinned download (mirror)"),
    Option("conda_sha256", None, _sha256, "sha256 of --conda-installer"),
    Option("docker_source", "distro", _choice("distro", "docker"),
           "Docker packages: the distribution's or Docker's apt repository"),
    Option("smoke_test", "course", _choice("course", "sample", "off"),
           "smoke-test data: course (TLC files), sample (synthetic, offline), off", providers=(*BOOTSTRAP, "codespace")),
    Option("forward", True, _bool, "forward Jupyter (8888) and MLflow (5000) ports in the SSH config", providers=(*BOOTSTRAP, "codespace")),
    Option("ssh_timeout", 60, _seconds, "seconds to wait for the box's SSH server", providers=(*BOOTSTRAP, "codespace")),
    Option("region", None, _pattern(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$", "an AWS region such as eu-west-1"),
           "ec2: AWS region (default: AWS_REGION or the profile's region)", providers=("ec2",)),
    Option("profile", None, _pattern(r"^[A-Za-z0-9_.@+=,/-]{1,128}$", "an AWS profile name"),
           "ec2: AWS profile (default: AWS_PROFILE or the default chain)", providers=("ec2",)),
    Option("instance_type", "t3.xlarge", _pattern(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$", "an instance type such as t3.xlarge"),
           "ec2: instance type (t3.xlarge: 4 vCPU, 16 GiB, as the course needs)", providers=("ec2",)),
    Option("disk_gb", 30, _disk_gb, "ec2: root volume size in GB (gp3, encrypted; 20..2000)", providers=("ec2",)),
    Option("ami", "ubuntu-24.04", _pattern(r"^(ubuntu-24\.04|ubuntu-22\.04|ami-[0-9a-f]{8,17})$",
                                           "ubuntu-24.04, ubuntu-22.04 or an ami-... id"),
           "ec2: image: ubuntu-24.04, ubuntu-22.04 or an ami-... id", providers=("ec2",)),
    Option("spot", False, _bool, "ec2: a spot instance (cheaper, may be stopped by AWS) instead of on-demand", providers=("ec2",)),
    Option("idle_stop", None, option_idle_stop,
           "power off after this long idle (30m, 2h, off; default: 60m on ec2, off elsewhere)"),
    Option("max_hours", None, option_max_hours, "power off after N hours of uptime regardless (0: no cap)"),
    Option("allow_cidr", None, _cidr, "ec2: who may reach SSH (default: your public IP as /32)", providers=("ec2",)),
    Option("subnet", None, _pattern(r"^subnet-[0-9a-f]{8,17}$", "a subnet id such as subnet-0123abcd"),
           "ec2: subnet to launch in (default: the default VPC's subnets)", providers=("ec2",)),
    Option("repo", None, _pattern(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$",
                                  "a GitHub repository OWNER/REPO"),
           "codespace: the repository with the dev container (OWNER/REPO)", providers=("codespace",)),
    Option("branch", None, _pattern(r"^(?!-)[A-Za-z0-9._/+-]{1,255}$", "a branch name"),
           "codespace: branch (default: the repository's default branch)", providers=("codespace",)),
    Option("machine", None, _pattern(r"^[A-Za-z][A-Za-z0-9]{0,63}$", "a machine type such as standardLinux32gb"),
           "codespace: machine type (default: the smallest allowed one with 4 cores and 16 GB)", providers=("codespace",)),
    Option("idle_timeout", None, _minutes(5, 240, "the idle timeout"),
           "codespace: stop after this much inactivity (5m..4h; default: your GitHub setting)", providers=("codespace",)),
    Option("retention", None, _minutes(0, 43200, "the retention period"),
           "codespace: delete this long after it stops (0m..30d; default: your GitHub setting)", providers=("codespace",)),
    Option("from_image", None, _pattern(r"^(auto|ami-[0-9a-f]{8,17}|[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?)$",
                                        "an image name (see `mlops-env image list`), an ami-... id (ec2) or auto"),
           "docker, ec2: start from a prebuilt image (`mlops-env image build`), or auto: the newest current one",
           providers=("docker", "ec2")),
    Option("clone", None, _git_url, "clone this git repository on the box if absent (https://, ssh://, git:// "
           "or USER@HOST:PATH); an existing folder is never touched"),
    Option("clone_dir", None, _clone_dir, "where --clone puts it, under the home directory (default: the "
           "repository's name)"),
    Option("serve", False, _bool, "after the smoke test, serve the model in Docker on the box "
           "(docker build, compose, 127.0.0.1:9696) and check its predictions",
           providers=("docker", "ssh", "ec2")),
]}


@dataclass(frozen=True)
class Resolved:
    """Resolved option values and where each came from (``flag``, ``env X``, ``file F:L``, ``default``)."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


def applies(name: str, provider: str) -> bool:
    """Whether option ``name`` means something for ``provider`` (unknown names: yes)."""
    opt = UP_OPTIONS.get(name)
    return opt is None or not provider or provider in opt.providers


WORKSTATION = "from the workstation"


def _norm_key(key: str) -> str:
    return key.strip().replace("-", "_")


def compose_yaml(text: str, path: Path | str, *, hint: str, code: str | None = None) -> Any:
    """The YAML node tree of a file's text (nodes keep their line numbers for later errors); a
    syntax error is one ConfigError line naming FILE:LINE:COLUMN and the problem."""
    import yaml

    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: malformed YAML: {problem}", hint=hint, code=code) from None


def load_file(path: Path, *, required: bool) -> dict[str, tuple[Any, int]]:
    """Read the YAML config: ``{option: (value, line)}``. Unknown keys are errors."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} not found", hint="check the --config path") from None
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}", hint="check its permissions and encoding") from e
    node = compose_yaml(text, path, hint="fix the file or move it away; see README 'Configuration'")
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}:{node.start_mark.line + 1}: expected a mapping of option: value",
                          hint="for example: python_dist: miniforge")
    out: dict[str, tuple[Any, int]] = {}
    loader = yaml.SafeLoader("")
    for knode, vnode in node.value:
        line = knode.start_mark.line + 1
        key = _norm_key(str(knode.value))
        if key not in UP_OPTIONS:
            raise ConfigError(
                f"{path}:{line}: unknown key {knode.value!r}",
                hint="known keys: " + ", ".join(sorted(UP_OPTIONS)),
                code="config-unknown-key",
            )
        value = loader.construct_object(vnode, deep=True)
        if key == "repo" and isinstance(value, str) and ("://" in value or "@" in value):
            # `repo: URL`, as in a class roster: the course repository, cloned on the box (the
            # codespace's `repo:` is OWNER/REPO, never a URL)
            if any(_norm_key(str(k.value)) == "clone" for k, _ in node.value):
                raise ConfigError(f"{path}:{line}: both `repo: {value}` and `clone:` name a repository to clone",
                                  hint="keep one of them")
            try:
                _git_url(value)
            except ValueError as e:
                raise ConfigError(f"{path}:{line}: key 'repo': {e}",
                                  hint="repo: the course repository to clone on the box (a URL), or the "
                                  "codespace's OWNER/REPO") from None
            key = "clone"
        out[key] = (value, line)
    return out


def resolve(
    flags: Mapping[str, Any],
    *,
    config_path: Path | None,
    default_config: Path,
    env: Mapping[str, str] | None = None,
    workstation: Mapping[str, Any] | None = None,
    workstation_sources: Mapping[str, str] | None = None,
) -> Resolved:
    """Resolve every ``up`` option. ``flags`` holds values given on the command line (None = not given).

    ``workstation``: the options an existing workstation was made with (its record), with
    ``workstation_sources`` saying where each came from then: a value that was a built-in
    default then is not a choice and does not hide the config file. Records written before
    sources were kept count every non-empty value as chosen."""
    env = os.environ if env is None else env
    workstation = workstation or {}
    file_values = load_file(config_path or default_config, required=config_path is not None)
    file_name = str(config_path or default_config)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, opt in UP_OPTIONS.items():
        env_name = "MLOPS_ENV_" + name.upper()
        raw: Any
        if flags.get(name) is not None:
            raw, src, where = flags[name], "flag", f"--{name.replace('_', '-')}"
        elif env_name in env:
            raw, src, where = env[env_name], f"env {env_name}", f"environment variable {env_name}"
        elif workstation.get(name) is not None and (
                workstation_sources is None or not workstation_sources
                or workstation_sources.get(name, "default") != "default"):
            raw, src, where = workstation[name], WORKSTATION, f"the workstation's saved option {name!r}"
        elif name in file_values:
            raw, line = file_values[name]
            src = f"file {file_name}:{line}"
            where = f"{file_name}:{line}: key {name!r}"
        else:
            values[name], sources[name] = opt.default, "default"
            continue
        try:
            values[name] = None if raw is None else opt.convert(raw)
        except (ValueError, TypeError) as e:
            err = ConfigError if src.startswith("file") else UsageError
            raise err(f"{where}: {e}", hint=f"{name}: {opt.help}", code="invalid-option") from None
        sources[name] = src
    return Resolved(values=values, sources=sources)
