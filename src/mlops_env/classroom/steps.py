"""The box side of a student's workstation: their public keys in the login user's
``authorized_keys`` (templates/authorized-keys.sh), and the instructor's mlops-env key only
while the roster's ``instructor_access`` is true. Runs after every other remote step (the
smoke test included): with ``instructor_access: false`` the instructor's key stops working on
the box once it has run (the connection it runs on stays open until the run ends)."""

from __future__ import annotations

from mlops_env.ssh.keys import split_public_key
from mlops_env.steps import ScriptCall, Step, StepContext, raise_for_script

#: every other remote step a workstation may have (needs that are absent are ignored)
AFTER = ("base", "conda", "docker", "smoke", "clone", "idle-stop")


class StudentKeysStep(Step):
    id = "student-keys"
    title = "student keys"
    needs = AFTER

    def __init__(self, student_keys: tuple[str, ...], instructor_key: str | None) -> None:
        keys = [*student_keys, *([instructor_key] if instructor_key else [])]
        if not student_keys:
            raise ValueError("a student without keys")
        out: list[str] = []
        for k in keys:  # validated and normalised again: they reach a remote script as arguments
            ktype, b64 = split_public_key(k)
            comment = k.split()[2] if len(k.split()) > 2 else ""
            comment = "".join(c for c in comment if c.isalnum() or c in "@._-")[:64]
            out.append(f"{ktype} {b64} {comment}".strip())
        self.keys = tuple(out)
        self.instructor = instructor_key is not None

    def _args(self, mode: str) -> tuple[str, ...]:
        args: list[str] = [mode]
        for k in self.keys:
            args += ["--key", k]
        return tuple(args)

    def check_call(self, ctx: StepContext) -> ScriptCall:
        return ScriptCall("authorized-keys.sh", self._args("check"))

    def apply(self, ctx: StepContext) -> None:
        raise_for_script(self.id, ctx.run_call(self.id, ScriptCall("authorized-keys.sh", self._args("apply"))))

    def describe_apply(self, ctx: StepContext) -> str:
        who = "the student's keys" + (" and the instructor's mlops-env key" if self.instructor else
                                      " only (the instructor's key is removed)")
        return f"authorized_keys: {who}"
