"""Where mlops-env keeps its files.

Everything the tool writes lives below platformdirs' per-user directories, or below
``$MLOPS_ENV_HOME`` when that is set (tests and users who want one self-contained folder).
The only file outside is the user's ``~/.ssh/config``, which gets one ``Include`` line.

Directories mlops-env makes are 0700. ``$MLOPS_ENV_HOME`` itself is the user's folder: made 0700
when it does not exist, but an existing one is never chmod-ed; ``home_exposure()`` says when
other users can read or write it (doctor warns).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

APP = "mlops-env"
ENV_HOME = "MLOPS_ENV_HOME"


@dataclass(frozen=True)
class Paths:
    data: Path  # state, keys, ssh files
    config: Path  # config.yaml
    cache: Path  # downloads (smoke-test data, installers)
    logs: Path  # one DEBUG log per run

    @property
    def state_dir(self) -> Path:
        return self.data / "state"

    @property
    def keys_dir(self) -> Path:
        return self.data / "keys"

    @property
    def ssh_dir(self) -> Path:
        return self.data / "ssh"

    @property
    def ssh_config(self) -> Path:
        """The tool's own ssh config file, included from ``~/.ssh/config``."""
        return self.ssh_dir / "config"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def config_file(self) -> Path:
        return self.config / "config.yaml"

    @property
    def reports_dir(self) -> Path:
        return self.data / "reports"


def get_paths() -> Paths:
    home = os.environ.get(ENV_HOME)
    if home:
        root = Path(home).expanduser().absolute()
        return Paths(data=root, config=root, cache=root / "cache", logs=root / "logs")
    import platformdirs

    return Paths(
        data=Path(platformdirs.user_data_dir(APP, appauthor=False)),
        config=Path(platformdirs.user_config_dir(APP, appauthor=False)),
        cache=Path(platformdirs.user_cache_dir(APP, appauthor=False)),
        logs=Path(platformdirs.user_log_dir(APP, appauthor=False)),
    )


def user_ssh_config() -> Path:
    """The user's own OpenSSH client config (``~/.ssh/config``, from ``$HOME``)."""
    return Path.home() / ".ssh" / "config"


def templates_dir() -> Path:
    """The shipped ``templates/`` folder: inside the wheel, or at the repo top in a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "templates"
    if packaged.is_dir():
        return packaged
    return here.parent.parent / "templates"


def _user_home_root() -> Path | None:
    home = os.environ.get(ENV_HOME)
    return Path(home).expanduser().absolute() if home else None


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) 0700, and make an existing one 0700, except
    ``$MLOPS_ENV_HOME`` itself: a folder the user gave is used as it is (see ``home_exposure``)."""
    path = path.absolute()
    missing: list[Path] = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another run
            continue
        os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask: make sure it is 0700
    if not missing and path != _user_home_root():
        os.chmod(path, 0o700)
    return path


def home_exposure() -> str | None:
    """When ``$MLOPS_ENV_HOME`` is a directory other users can read or write, one sentence
    saying so (for a warning); otherwise None. mlops-env keeps its SSH key, state and logs in
    0700 sub-directories, but it does not change the permissions of a folder the user chose."""
    root = _user_home_root()
    if root is None:
        return None
    try:
        st = root.stat()
    except OSError:
        return None
    mode = st.st_mode & 0o777
    if not mode & 0o077:
        return None
    who = []
    if mode & 0o044:
        who.append("read")
    if mode & 0o022:
        who.append("write")
    if mode & 0o011 and not who:
        who.append("enter")
    return (f"{ENV_HOME}={root} can be {' and '.join(who) or 'accessed'} by other users (mode "
            f"{mode:04o}); mlops-env keeps its SSH key and workstation records in it (in 0700 "
            f"sub-directories); `chmod 700 {root}` makes it private")


#: a script's include of a shared library: ``. "${BASH_SOURCE[0]%/*}/lib/NAME.sh"`` (works when the
#: file is run from the checkout; template() inlines it, since a script reaches a box on stdin)
_INCLUDE = re.compile(r'^\. "\$\{BASH_SOURCE\[0\]%/\*\}/(lib/[A-Za-z0-9_-]+\.sh)"[ \t]*$', re.MULTILINE)


@functools.cache
def template(name: str) -> str:
    """Text of a shipped template (``templates/<name>``), its ``lib/`` includes inlined."""
    text = (templates_dir() / name).read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda m: template(m.group(1)).rstrip("\n"), text)
