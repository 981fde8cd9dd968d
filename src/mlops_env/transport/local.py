"""Run commands on this machine (``doctor`` without a box, and tests)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence

from mlops_env import osenv
from mlops_env.transport import LineCallback, RunResult, Transport


class LocalTransport(Transport):
    def __init__(self, *, env: Mapping[str, str] | None = None) -> None:
        import getpass

        self.user = getpass.getuser()
        self.where = "this machine"
        self.env = dict(os.environ if env is None else env)
        self.round_trips = 0

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
    ) -> RunResult:
        self.round_trips += 1
        start = time.monotonic()
        proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            **osenv.new_group_kwargs(),  # a timeout kills the whole group, scripts' children too
        )
        out_chunks: list[bytes] = []
        err_chunks: list[bytes] = []

        def pump(stream, sink, callback):  # type: ignore[no-untyped-def]
            for line in iter(stream.readline, b""):
                sink.append(line)
                if callback:
                    callback(line.decode("utf-8", "replace").rstrip("\n"))

        t_out = threading.Thread(target=pump, args=(proc.stdout, out_chunks, on_line), daemon=True)
        t_err = threading.Thread(target=pump, args=(proc.stderr, err_chunks, on_line), daemon=True)
        t_out.start()
        t_err.start()
        if stdin is not None and proc.stdin:
            # The command may exit without reading its input (sudo refusing, say).
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            osenv.kill_tree(proc)
            proc.wait()
            code = 124
        t_out.join()
        t_err.join()
        return RunResult(
            argv=tuple(argv),
            exit_code=code,
            stdout=b"".join(out_chunks).decode("utf-8", "replace"),
            stderr=b"".join(err_chunks).decode("utf-8", "replace"),
            seconds=time.monotonic() - start,
        )
