"""conda STAND-IN: a test double of the `conda` command, made by mlops-env's test suite.

It is NOT conda. It is installed by the stand-in Anaconda installer
(tests/standin/make_conda_installer.py) as PREFIX/lib/conda-standin/conda.py and run by
PREFIX/bin/conda (a bash wrapper). Environments are Python venvs; packages come only from the
wheelhouse that the installer embedded (PREFIX/pkgs/standin-wheels), never from a network.

Supported (what mlops-env uses; anything else exits 2 with "not supported by the stand-in"):
  conda --version | -V | version
  conda info [--base | --json | --envs]
  conda init [bash|zsh|--all] [--reverse] [--dry-run]
  conda shell.bash|shell.posix|shell.zsh hook | activate [ENV] | deactivate
  conda activate / deactivate           (need `conda init` first, like the real one)
  conda list [-n ENV | -p PREFIX] [--json] [REGEX]
  conda env list | conda env remove -n ENV [-y]
  conda run [-n ENV | -p PREFIX] [--no-capture-output] [--live-stream] [--cwd DIR] CMD ...
  conda tos accept|reject [--override-channels] [--channel URL ...] | conda tos status
  conda create -n ENV [-y] [-c CH ...] [--override-channels] SPEC ...   (Terms of Service gated)
  conda install [-n ENV] [-y] [-c CH ...] [--override-channels] SPEC ... (Terms of Service gated)
  conda remove -n ENV --all [-y]
  conda config --set KEY VALUE | --show [KEY] | --get [KEY]
  conda clean [...]                      (no-op)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

CONDA_VERSION = "@CONDA_VERSION@"
ROOT = Path(__file__).resolve().parents[2]  # PREFIX/lib/conda-standin/conda.py -> PREFIX
DEFAULT_CHANNELS = ("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r")
TOS_FILE = ROOT / "conda-meta" / "standin-tos-accepted.txt"
WHEELS = ROOT / "pkgs" / "standin-wheels"
INIT_BEGIN = "# >>> conda initialize >>>"
INIT_END = "# <<< conda initialize <<<"


def out(s: str = "") -> None:
    sys.stdout.write(s + "\n")


def err(s: str) -> None:
    sys.stderr.write(s + "\n")


def unsupported(args: list[str]) -> int:
    err(f"conda STAND-IN: 'conda {' '.join(args)}' is not supported by this test double (mlops-env tests)")
    return 2


def python_version() -> str:
    v = sys.version_info
    return f"{v.major}.{v.minor}.{v.micro}"


# ----------------------------------------------------------------------------- config


def condarc_path() -> Path:
    return Path(os.path.expanduser("~")) / ".condarc"


def read_condarc() -> dict[str, str]:
    conf: dict[str, str] = {}
    p = condarc_path()
    if p.exists():
        for line in p.read_text().splitlines():
            m = re.match(r"^([A-Za-z_][\w.]*)\s*:\s*(.*?)\s*$", line)
            if m:
                conf[m.group(1)] = m.group(2)
    return conf


def truthy(v: str | None, default: bool) -> bool:
    if v is None or v == "":
        return default
    return v.strip().lower() in ("true", "yes", "1", "on")


# ----------------------------------------------------------------------------- environments


def env_prefix(name: str | None, prefix: str | None) -> Path:
    if prefix:
        return Path(prefix).expanduser().resolve()
    if not name or name == "base":
        return ROOT
    return ROOT / "envs" / name


def env_exists(p: Path) -> bool:
    return (p / "bin" / "python").exists()


def not_found(p: Path) -> int:
    err(f"\nEnvironmentLocationNotFound: Not a conda environment: {p}\n")
    return 1


def all_envs() -> list[Path]:
    envs = [ROOT]
    d = ROOT / "envs"
    if d.is_dir():
        envs += sorted(p for p in d.iterdir() if env_exists(p))
    return envs


def pop_opt(args: list[str], *names: str, has_value: bool = True) -> str | None | bool:
    """Remove an option (and its value) from ARGS; returns the value / True / None."""
    for i, a in enumerate(args):
        for n in names:
            if a == n:
                if not has_value:
                    del args[i]
                    return True
                if i + 1 >= len(args):
                    raise SystemExit(f"conda STAND-IN: {n} needs a value")
                val = args[i + 1]
                del args[i : i + 2]
                return val
            if has_value and n.startswith("--") and a.startswith(n + "="):
                del args[i]
                return a.split("=", 1)[1]
    return None


def pop_all(args: list[str], *names: str) -> list[str]:
    vals = []
    while True:
        v = pop_opt(args, *names)
        if v is None:
            return vals
        vals.append(str(v))


# ----------------------------------------------------------------------------- shell


def activate_exports(p: Path, name: str) -> str:
    return "\n".join(
        [
            f"export PATH='{p}/bin':\"$(printf %s \"$PATH\" | sed -e 's#{ROOT}/bin:##g')\"",
            f"export CONDA_PREFIX='{p}'",
            f"export CONDA_DEFAULT_ENV='{name}'",
            "export CONDA_SHLVL=1",
            f"export CONDA_PROMPT_MODIFIER='({name}) '",
            f"PS1='({name}) '\"${{PS1#\\(*\\) }}\"",
        ]
    )


def hook(activate: bool) -> str:
    lines = [
        "# conda STAND-IN shell hook (mlops-env test double, not the real conda)",
        f"export CONDA_EXE='{ROOT}/bin/conda'",
        f"export CONDA_PYTHON_EXE='{ROOT}/bin/python'",
        "export _CE_M=''",
        "export _CE_CONDA=''",
        'case ":$PATH:" in',
        f"  *':{ROOT}/condabin:'*) ;;",
        f"  *) export PATH='{ROOT}/condabin':\"$PATH\" ;;",
        "esac",
        "conda() {",
        '    case "${1:-}" in',
        '        activate) shift; eval "$("$CONDA_EXE" shell.posix activate "$@")" ;;',
        '        deactivate) shift; eval "$("$CONDA_EXE" shell.posix deactivate "$@")" ;;',
        '        *) "$CONDA_EXE" "$@" ;;',
        "    esac",
        "}",
    ]
    if activate:
        lines.append("conda activate base")
    return "\n".join(lines)


def cmd_shell(shell: str, args: list[str]) -> int:
    sub = args[0] if args else ""
    if sub == "hook":
        auto = "--no-activate" not in args and truthy(read_condarc().get("auto_activate_base"), True)
        out(hook(activate=auto))
        return 0
    if sub == "activate":
        name = args[1] if len(args) > 1 else "base"
        p = Path(name) if "/" in name else env_prefix(name, None)
        if not env_exists(p):
            err(f"\nEnvironmentNameNotFound: Could not find conda environment: {name}\n")
            return 1
        out(activate_exports(p, name if "/" not in name else str(p)))
        return 0
    if sub == "deactivate":
        cur = os.environ.get("CONDA_PREFIX", "")
        out(
            "\n".join(
                [
                    f"export PATH=\"$(printf %s \"$PATH\" | sed -e 's#{cur}/bin:##g')\"" if cur else ":",
                    "unset CONDA_PREFIX CONDA_DEFAULT_ENV CONDA_PROMPT_MODIFIER",
                    "export CONDA_SHLVL=0",
                    'PS1="${PS1#\\(*\\) }"',
                ]
            )
        )
        return 0
    return unsupported([f"shell.{shell}", *args])


def init_block(shell: str) -> str:
    return "\n".join(
        [
            INIT_BEGIN,
            "# !! Contents within this block are managed by 'conda init' !!",
            f"__conda_setup=\"$('{ROOT}/bin/conda' 'shell.{shell}' 'hook' 2> /dev/null)\"",
            "if [ $? -eq 0 ]; then",
            '    eval "$__conda_setup"',
            "else",
            f'    if [ -f "{ROOT}/etc/profile.d/conda.sh" ]; then',
            f'        . "{ROOT}/etc/profile.d/conda.sh"',
            "    else",
            f'        export PATH="{ROOT}/bin:$PATH"',
            "    fi",
            "fi",
            "unset __conda_setup",
            INIT_END,
        ]
    )


def cmd_init(args: list[str]) -> int:
    reverse = bool(pop_opt(args, "--reverse", has_value=False))
    dry = bool(pop_opt(args, "--dry-run", "-d", has_value=False))
    all_shells = bool(pop_opt(args, "--all", has_value=False))
    shells = ["bash", "zsh"] if all_shells else (args or ["bash"])
    home = Path(os.path.expanduser("~"))
    changed = False
    for sh in shells:
        if sh not in ("bash", "zsh"):
            return unsupported(["init", sh])
        rc = home / (".bashrc" if sh == "bash" else ".zshrc")
        text = rc.read_text() if rc.exists() else ""
        has = INIT_BEGIN in text and INIT_END in text
        if reverse:
            if has:
                new = re.sub(
                    r"\n?" + re.escape(INIT_BEGIN) + r".*?" + re.escape(INIT_END) + r"\n?", "\n", text, flags=re.S
                )
                if not dry:
                    rc.write_text(new)
                out(f"modified      {rc}")
                changed = True
            else:
                out(f"no change     {rc}")
            continue
        if has:
            out(f"no change     {rc}")
            continue
        if not dry:
            sep = "" if text == "" or text.endswith("\n") else "\n"
            rc.write_text(text + sep + "\n" + init_block(sh) + "\n")
        out(f"modified      {rc}")
        changed = True
    out("")
    if changed:
        out("==> For changes to take effect, close and re-open your current shell. <==")
    else:
        out("No action taken.")
    out("")
    return 0


# ----------------------------------------------------------------------------- info / list


def info_dict() -> dict[str, object]:
    envs_dirs = [str(ROOT / "envs"), str(Path(os.path.expanduser("~")) / ".conda" / "envs")]
    active = os.environ.get("CONDA_PREFIX") or None
    return {
        "standin": True,
        "standin_note": "mlops-env test double, not the real conda",
        "conda_version": CONDA_VERSION,
        "conda_build_version": "not installed",
        "python_version": f"{python_version()}.final.0",
        "platform": "linux-64",
        "root_prefix": str(ROOT),
        "conda_prefix": str(ROOT),
        "default_prefix": str(ROOT),
        "active_prefix": active,
        "active_prefix_name": os.environ.get("CONDA_DEFAULT_ENV") if active else None,
        "av_data_dir": str(ROOT / "etc" / "conda"),
        "envs": [str(p) for p in all_envs()],
        "envs_dirs": envs_dirs,
        "pkgs_dirs": [str(ROOT / "pkgs")],
        "channels": [c + "/linux-64" for c in DEFAULT_CHANNELS] + [c + "/noarch" for c in DEFAULT_CHANNELS],
        "sys.version": sys.version,
        "sys.prefix": str(ROOT),
        "sys.executable": str(ROOT / "bin" / "python"),
        "user_rc_path": str(condarc_path()),
        "rc_path": str(ROOT / ".condarc"),
    }


def cmd_info(args: list[str]) -> int:
    if "--base" in args:
        out(str(ROOT))
        return 0
    if "--json" in args:
        out(json.dumps(info_dict(), indent=2, sort_keys=True))
        return 0
    if "--envs" in args or "-e" in args:
        return cmd_env(["list"])
    d = info_dict()
    out("")
    out("     active environment : " + str(d["active_prefix_name"] or "None"))
    out("       conda version : " + CONDA_VERSION + "  (STAND-IN: mlops-env test double)")
    out("      python version : " + str(d["python_version"]))
    out("    base environment : " + str(ROOT) + "  (writable)")
    out("            platform : linux-64")
    out("    envs directories : " + "\n                       ".join(d["envs_dirs"]))  # type: ignore[arg-type]
    out("")
    return 0


def installed(p: Path) -> list[tuple[str, str]]:
    code = (
        "import json, importlib.metadata as m\n"
        "print(json.dumps(sorted({(d.metadata['Name'] or '').lower(): d.version for d in m.distributions()}.items())))"
    )
    res = subprocess.run([str(p / "bin" / "python"), "-I", "-c", code], capture_output=True, text=True, check=True)  # noqa: S603 - fixed program, test-controlled arguments
    return [(n, v) for n, v in json.loads(res.stdout) if n]


def cmd_list(args: list[str]) -> int:
    name = pop_opt(args, "-n", "--name")
    prefix = pop_opt(args, "-p", "--prefix")
    as_json = bool(pop_opt(args, "--json", has_value=False))
    p = env_prefix(name if isinstance(name, str) else None, prefix if isinstance(prefix, str) else None)
    if not env_exists(p):
        return not_found(p)
    rx = re.compile(args[0]) if args else None
    rows = [(n, v, "pypi_0", "pypi") for n, v in installed(p)]
    rows.append(("python", python_version(), "standin_0", "standin"))
    if p == ROOT:
        rows.append(("conda", CONDA_VERSION, "standin_0", "standin"))
    rows = sorted(r for r in rows if rx is None or rx.search(r[0]))
    if as_json:
        out(json.dumps([{"name": n, "version": v, "build_string": b, "channel": c} for n, v, b, c in rows], indent=2))
        return 0
    out(f"# packages in environment at {p}:")
    out("#")
    out(f"# {'Name':<23} {'Version':<25} {'Build':>6}  Channel")
    for n, v, b, c in rows:
        out(f"{n:<25} {v:<25} {b:>6}    {c}")
    return 0


def cmd_env(args: list[str]) -> int:
    sub = args[0] if args else ""
    if sub == "list":
        active = os.environ.get("CONDA_PREFIX", "")
        out("# conda environments:")
        out("#")
        for p in all_envs():
            label = "base" if p == ROOT else p.name
            out(f"{label:<26}{'*' if str(p) == active else ' '}  {p}")
        out("")
        return 0
    if sub == "remove":
        return cmd_remove(["--all", *args[1:]])
    return unsupported(["env", *args])


# ----------------------------------------------------------------------------- run


def cmd_run(args: list[str]) -> int:
    name = pop_opt(args, "-n", "--name")
    prefix = pop_opt(args, "-p", "--prefix")
    cwd = pop_opt(args, "--cwd")
    for flag in ("--no-capture-output", "--live-stream", "-v", "--verbose"):
        while pop_opt(args, flag, has_value=False):
            pass
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        err("conda run: error: the following arguments are required: executable_call")
        return 2
    p = env_prefix(name if isinstance(name, str) else None, prefix if isinstance(prefix, str) else None)
    if not env_exists(p):
        return not_found(p)
    env = dict(os.environ)
    env["PATH"] = f"{p}/bin:{ROOT}/condabin:" + env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["CONDA_PREFIX"] = str(p)
    env["CONDA_DEFAULT_ENV"] = "base" if p == ROOT else p.name
    env["CONDA_SHLVL"] = "1"
    if isinstance(cwd, str):
        os.chdir(cwd)
    exe = shutil.which(args[0], path=env["PATH"])
    if exe is None:
        err(f"\nERROR: conda.cli.main_run:execute(127): `conda run {' '.join(args)}` failed. (See above for error)")
        err(f"/bin/bash: line 1: {args[0]}: command not found")
        return 127
    os.execve(exe, args, env)
    return 0  # not reached


# ----------------------------------------------------------------------------- terms of service


def tos_accepted() -> set[str]:
    if not TOS_FILE.exists():
        return set()
    return {line.strip() for line in TOS_FILE.read_text().splitlines() if line.strip()}


def cmd_tos(args: list[str]) -> int:
    sub = args[0] if args else "status"
    rest = args[1:]
    pop_opt(rest, "--override-channels", has_value=False)
    channels = [c.rstrip("/") for c in pop_all(rest, "-c", "--channel")]
    for flag in ("-y", "--yes", "--json", "-v", "--verbose", "-q", "--quiet"):
        pop_opt(rest, flag, has_value=False)
    if rest:
        return unsupported(["tos", *args])
    channels = channels or list(DEFAULT_CHANNELS)
    have = tos_accepted()
    if sub == "accept":
        have |= set(channels)
        TOS_FILE.parent.mkdir(parents=True, exist_ok=True)
        TOS_FILE.write_text("".join(c + "\n" for c in sorted(have)))
        for c in channels:
            out(f"accepted Terms of Service for {c}  (STAND-IN record: {TOS_FILE})")
        return 0
    if sub == "reject":
        have -= set(channels)
        TOS_FILE.parent.mkdir(parents=True, exist_ok=True)
        TOS_FILE.write_text("".join(c + "\n" for c in sorted(have)))
        for c in channels:
            out(f"rejected Terms of Service for {c}")
        return 0
    if sub in ("status", "view"):
        for c in channels:
            out(f"{c}: {'accepted' if c in have else 'not accepted'}")
        return 0
    return unsupported(["tos", *args])


def needs_tos(channels: list[str], override: bool) -> list[str]:
    used = list(channels) if override else list(channels) + ["defaults"]
    urls: list[str] = []
    for c in used:
        c = c.rstrip("/")
        if c == "defaults":
            urls += list(DEFAULT_CHANNELS)
        elif c in ("main", "r", "anaconda") or c.startswith("https://repo.anaconda.com/"):
            urls.append(c if c.startswith("https://") else f"https://repo.anaconda.com/pkgs/{'main' if c == 'anaconda' else c}")
    if truthy(os.environ.get("CONDA_PLUGINS_AUTO_ACCEPT_TOS"), False):
        return []
    have = tos_accepted()
    return [u for u in dict.fromkeys(urls) if u not in have]


def tos_error(missing: list[str]) -> int:
    err("\nCondaToSNonInteractiveError: Terms of Service have not been accepted for the following channels. Please accept or remove them before proceeding:")
    for u in missing:
        err(f"    \u2022 {u}")
    err("\nTo accept these channels' Terms of Service, run the following commands:")
    for u in missing:
        err(f"    conda tos accept --override-channels --channel {u}")
    err("\nFor information on safely removing channels from your conda configuration,")
    err("please see the official documentation:\n\n    https://www.anaconda.com/docs/tools/working-with-conda/channels\n")
    return 1


# ----------------------------------------------------------------------------- create / install


SPEC_RE = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(.*)$")


def pip_requirements(specs: list[str], env_python: str) -> list[str] | str:
    """conda specs -> pip requirement strings; returns an error text on failure."""
    reqs = []
    missing = []
    available = {w.name.split("-")[0].lower().replace("_", "-") for w in WHEELS.glob("*.whl")}
    for s in specs:
        s = s.split("::")[-1]
        m = SPEC_RE.match(s.replace(" ", ""))
        if not m:
            return f"InvalidMatchSpec: Invalid spec '{s}'"
        name, ver = m.group(1).lower(), m.group(2)
        if name == "python":
            want = ver.lstrip("=").rstrip(".*")
            if want and not env_python.startswith(want) and not ver.startswith((">", "<", "!")):
                missing.append(f"python{ver} (the STAND-IN only has python {env_python}, the box's python3)")
            continue
        if name in ("pip", "setuptools", "wheel", "conda"):
            continue
        if name not in available:
            missing.append(s)
            continue
        if ver.startswith("=") and not ver.startswith("=="):
            ver = "==" + ver[1:] + ("" if ver.endswith("*") else ".*")
        reqs.append(name + ver)
    if missing:
        return (
            "\nPackagesNotFoundError: The following packages are not available from current channels:\n\n"
            + "".join(f"  - {x}\n" for x in missing)
            + "\n(STAND-IN: only the embedded wheelhouse is available: "
            + ", ".join(sorted(available))
            + ")\n"
        )
    return reqs


def confirm(args: list[str]) -> bool:
    yes = bool(pop_opt(args, "-y", "--yes", has_value=False))
    if yes or truthy(read_condarc().get("always_yes"), False) or truthy(os.environ.get("CONDA_ALWAYS_YES"), False):
        return True
    if not sys.stdin.isatty():
        err("conda STAND-IN: no terminal to ask 'Proceed ([y]/n)?'; pass -y")
        raise SystemExit(1)
    sys.stdout.write("Proceed ([y]/n)? ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("", "y", "yes")


def pip_install(p: Path, reqs: list[str]) -> int:
    if not reqs:
        return 0
    env = dict(os.environ, PIP_CONFIG_FILE="/dev/null")
    r = subprocess.run(  # noqa: S603 - fixed program, test-controlled arguments
        [str(p / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index", "--no-compile", "--disable-pip-version-check",
         "--no-warn-script-location", "--find-links", str(WHEELS), *reqs],
        env=env,
    )
    return r.returncode


def cmd_create_install(verb: str, args: list[str]) -> int:
    name = pop_opt(args, "-n", "--name")
    prefix = pop_opt(args, "-p", "--prefix")
    override = bool(pop_opt(args, "--override-channels", has_value=False))
    channels = pop_all(args, "-c", "--channel")
    clone = pop_opt(args, "--clone")
    for flag in ("-q", "--quiet", "--no-default-packages", "--json", "--offline", "-v"):
        while pop_opt(args, flag, has_value=False):
            pass
    yes = confirm(args)
    if any(a.startswith("-") for a in args):
        return unsupported([verb, *args])
    if verb == "create" and not name and not prefix:
        err("\nCondaValueError: one of the arguments -n/--name -p/--prefix is required\n")
        return 1
    p = env_prefix(name if isinstance(name, str) else None, prefix if isinstance(prefix, str) else None)
    if verb == "install" and not env_exists(p):
        return not_found(p)
    missing = needs_tos(channels, override)
    if missing:
        return tos_error(missing)
    py = python_version()
    reqs = pip_requirements(list(args), py)
    if isinstance(reqs, str):
        err(reqs)
        return 1
    if clone:
        src = env_prefix(str(clone), None)
        if not env_exists(src):
            return not_found(src)
        reqs = [f"{n}=={v}" for n, v in installed(src) if n not in ("pip", "setuptools", "wheel")] + reqs
    if not yes:
        out("Exiting.")
        return 1
    out(f"STAND-IN conda {verb}: {p} <- {' '.join(reqs) or '(python only)'} (from the embedded wheelhouse)")
    if verb == "create":
        if p.exists():
            if p == ROOT:
                err("\nCondaValueError: The target prefix is the base prefix. Aborting.\n")
                return 1
            shutil.rmtree(p)
        p.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--copies", str(p)], check=True)  # noqa: S603 - fixed program, test-controlled arguments
        (p / "conda-meta").mkdir(exist_ok=True)
        (p / "conda-meta" / "history").write_text(f"# cmd: conda create {' '.join(sys.argv[2:])}\n")
    rc = pip_install(p, reqs)
    if rc == 0:
        out("\nDone (STAND-IN).")
    return rc


def cmd_remove(args: list[str]) -> int:
    name = pop_opt(args, "-n", "--name")
    prefix = pop_opt(args, "-p", "--prefix")
    all_ = bool(pop_opt(args, "--all", has_value=False))
    confirm(args)
    if not all_:
        return unsupported(["remove", *args])
    p = env_prefix(name if isinstance(name, str) else None, prefix if isinstance(prefix, str) else None)
    if p == ROOT:
        err("\nCondaEnvironmentError: cannot remove root environment\n")
        return 1
    if not env_exists(p):
        return not_found(p)
    shutil.rmtree(p)
    out(f"Remove all packages in environment {p}: done (STAND-IN)")
    return 0


def cmd_config(args: list[str]) -> int:
    rc = condarc_path()
    conf = read_condarc()
    if args[:1] == ["--set"] and len(args) == 3:
        conf[args[1]] = args[2]
        rc.write_text("".join(f"{k}: {v}\n" for k, v in conf.items()))
        return 0
    if args[:1] in (["--show"], ["--get"]):
        keys = args[1:] or sorted(conf)
        for k in keys:
            if k in conf:
                out(f"{k}: {conf[k]}" if args[0] == "--show" else f"--set {k} {conf[k]}")
        return 0
    return unsupported(["config", *args])


SUBCOMMANDS = (
    "info", "init", "list", "env", "run", "tos", "remove", "uninstall", "config", "create", "install", "clean",
)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        out(__doc__ or "")
        return 0 if argv else 2
    cmd, args = argv[0], argv[1:]
    if cmd in SUBCOMMANDS and ("-h" in args or "--help" in args):
        out(f"usage: conda {cmd} [-h] ...  (conda STAND-IN, mlops-env test double)")
        return 0
    if cmd in ("--version", "-V", "version"):
        out(f"conda {CONDA_VERSION}")
        return 0
    if cmd.startswith("shell."):
        return cmd_shell(cmd.split(".", 1)[1], args)
    if cmd in ("activate", "deactivate"):
        err("\nCondaError: Run 'conda init' before 'conda activate'\n")
        return 1
    handlers = {
        "info": cmd_info,
        "init": cmd_init,
        "list": cmd_list,
        "env": cmd_env,
        "run": cmd_run,
        "tos": cmd_tos,
        "remove": cmd_remove,
        "uninstall": cmd_remove,
        "config": cmd_config,
    }
    if cmd in handlers:
        return handlers[cmd](args)
    if cmd in ("create", "install"):
        return cmd_create_install(cmd, args)
    if cmd == "clean":
        out("STAND-IN conda clean: nothing to clean")
        return 0
    return unsupported(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
