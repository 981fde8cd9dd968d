"""Where mlops-env keeps its files.

Everything the tool writes lives below platformdirs' per-user directories, or below
``$MLOPS_ENV_HOME`` when that is set (tests and users who want one self-contained folder).
The only file outside is the user's ``~/.ssh/config``, which gets one ``Include`` line.
"""

from __future__ import annotations

import os
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


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
