"""`up docker --clone URL`: the course repository cloned on a real container workstation from a
real `git daemon` (on the box's loopback), once; a second `up` never touches the checkout (the
user's change survives); `mlops-env code NAME` names that folder. The Anaconda installer is the
STAND-IN one (tests/standin), as in test_up_docker.py."""

from __future__ import annotations

import os
from typing import Any

from e2ehelp import Env, step_status

NAME = f"e2e-clone{os.getpid() % 100000}"
ALIAS = f"mlops-{NAME}"
URL = "git://127.0.0.1:9418/course.git"


def test_clone_once_and_never_touch_the_checkout(user_env: Env, docker_engine: Any, base_image_with_standin: Any) -> None:
    m = base_image_with_standin
    args = ["--json", "up", "docker", NAME, "--image", m.image, "--conda-installer", m.url,
            "--conda-sha256", m.sha256, "--accept-anaconda-tos", "--smoke-test", "off"]
    try:
        first = user_env.mlops(*args)
        assert first.code == 0, first.stdout + first.stderr
        box = docker_engine.containers.list(filters={"label": f"mlops-env.name={NAME}"})[0]
        # A real git server on the box's loopback (git came with the base step).
        setup = ("set -e; mkdir -p /srv/src && cd /srv/src && git init -q -b main && echo 'week 1' > README.md && "
                 "git -c user.name=t -c user.email=t@x add . && git -c user.name=t -c user.email=t@x commit -qm one && "
                 "git clone -q --bare /srv/src /srv/git/course.git && "
                 "git daemon --base-path=/srv/git --export-all --reuseaddr --listen=127.0.0.1 --detach")
        r = box.exec_run(["sh", "-c", setup], user="root")
        assert r.exit_code == 0, r.output

        cloned = user_env.mlops(*args, "--clone", URL)
        assert cloned.code == 0, cloned.stdout + cloned.stderr
        assert step_status(cloned)["clone"] == "changed"
        assert cloned.data["code_command"] == f"code --remote ssh-remote+{ALIAS} /home/mlops/course"
        r2 = user_env.ssh(ALIAS, "cat course/README.md; git -C course remote get-url origin")
        assert r2.stdout.split("\n")[:2] == ["week 1", URL], r2.stderr

        # the user's work in the checkout is never touched by a later up
        assert user_env.ssh(ALIAS, "echo mine > course/README.md").returncode == 0
        again = user_env.mlops("--json", "up", "docker", NAME)  # the clone is remembered
        assert again.code == 0, again.stdout + again.stderr
        assert step_status(again)["clone"] == "unchanged"
        assert user_env.ssh(ALIAS, "cat course/README.md").stdout.strip() == "mine"
        code = user_env.mlops("--json", "code", NAME)
        assert code.data["command"] == f"code --remote ssh-remote+{ALIAS} /home/mlops/course"

        bad = user_env.mlops("--json", "up", "docker", NAME, "--clone", "-uhttps://x/y")
        assert bad.code == 2 and "cannot start with '-'" in bad.stdout
    finally:
        user_env.mlops("down", NAME, "--yes")
        for c in docker_engine.containers.list(all=True, filters={"label": f"mlops-env.name={NAME}"}):
            c.remove(force=True, v=True)
