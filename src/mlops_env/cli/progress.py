"""Live progress of ``up``: one row per step with its state and time (Rich Live on a terminal,
one line per finished step otherwise; nothing but the JSON document on stdout with --json).

Step messages and the lines a box prints are shown literally (escaped: a `[bold]` or
`[/opt/x]` from a box is text, not Rich markup). A run cut off (Ctrl-C, a lost connection)
leaves its unfinished steps marked ``interrupted``, not ``running``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("mlops_env")

_ICON = {"changed": "[green]✓[/green]", "unchanged": "[green]✓[/green]", "failed": "[red]✗[/red]",
         "skipped": "[yellow]-[/yellow]", "running": "[cyan]…[/cyan]", "interrupted": "[yellow]![/yellow]"}
INTERRUPTED = "interrupted"


class StepView:
    def __init__(self, ui: Any) -> None:
        self.ui = ui
        self.rows: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.live: Any = None
        self.note = ""

    # -- context -------------------------------------------------------------------------
    def __enter__(self) -> StepView:
        if not self.ui.json_mode and self.ui.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._render(), console=self.ui.console, refresh_per_second=8,
                             transient=False, get_renderable=self._render)
            self.live.__enter__()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        cut = self._mark_unfinished(_ended_by(exc_type)) if exc_type is not None else []
        if self.live is not None:
            self.note = ""
            self.live.__exit__(exc_type, *exc)
            self.live = None
        elif not self.ui.json_mode:
            for sid in cut:  # without a live display only finished steps were printed
                self.ui.console.print(self._line(sid, self.rows[sid]))

    def _mark_unfinished(self, status: str) -> list[str]:
        """The run ended by an exception while steps were still running: they did not finish
        (``interrupted`` by Ctrl-C, else ``failed``)."""
        cut = []
        with self.lock:
            for sid, row in self.rows.items():
                if row["status"] == "running":
                    row.update(status=status, seconds=time.monotonic() - row["start"])
                    cut.append(sid)
        if cut:
            log.info("%s while running: %s", status, ", ".join(cut))
        return cut

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop redrawing while a question is asked on the terminal."""
        live = self.live
        if live is not None:
            live.stop()
        try:
            yield
        finally:
            if live is not None:
                live.start()

    # -- events --------------------------------------------------------------------------
    def progress(self, msg: str) -> None:
        with self.lock:
            self.note = msg
        log.info(msg)
        if self.live is None and not self.ui.json_mode:
            self.ui.console.print(f"[dim]  {escape(msg)}[/dim]")

    def step(self, kind: str, sid: str, **info: Any) -> None:
        with self.lock:
            row = self.rows.setdefault(sid, {"title": info.get("title", sid), "status": "running",
                                             "start": time.monotonic(), "line": "", "seconds": None})
            if kind == "start":
                row.update(status="running", start=time.monotonic(), title=info.get("title", sid),
                           line=info.get("message", ""))
            elif kind == "line":
                line = str(info.get("line", "")).strip()
                if line.startswith("mlops-hint: "):  # the hint comes with the error, below
                    line = ""
                for prefix in ("mlops: ", "mlops-error: "):
                    if line.startswith(prefix):
                        line = line[len(prefix):]
                if line:
                    row["line"] = line[:100]
            elif kind == "done":
                rep = info["report"]
                msg = rep.message
                if rep.status == "failed" and msg.startswith(f"step {sid} failed: "):
                    msg = msg[len(f"step {sid} failed: "):]  # the row says which step failed
                row.update(status=rep.status, seconds=rep.seconds, line=msg, title=rep.title)
        if kind == "done" and self.live is None and not self.ui.json_mode:
            self.ui.console.print(self._line(sid, self.rows[sid]))

    # -- rendering -----------------------------------------------------------------------
    def _line(self, sid: str, row: dict[str, Any]) -> str:
        secs = row["seconds"] if row["seconds"] is not None else time.monotonic() - row["start"]
        status = row["status"]
        icon = _ICON.get(status, "?")
        label = {"changed": "done", "unchanged": "ok", "running": "running"}.get(status, status)
        msg = row["line"]
        return f" {icon} {escape(sid):<11} {label:<9} {secs:6.1f}s  [dim]{escape(msg)}[/dim]"

    def _render(self) -> Any:
        from rich.text import Text

        with self.lock:
            lines = [self._line(sid, row) for sid, row in self.rows.items()]
            if self.note and not any(r["status"] == "running" for r in self.rows.values()):
                lines.append(f"   [dim]{escape(self.note)}[/dim]")
        return Text.from_markup("\n".join(lines) if lines else "[dim]starting…[/dim]")


def _ended_by(exc_type: object) -> str:
    from mlops_env.errors import Interrupted

    if isinstance(exc_type, type) and issubclass(exc_type, (KeyboardInterrupt, Interrupted)):
        return INTERRUPTED
    return "failed"


def escape(text: str) -> str:
    """``text`` for a Rich markup string, shown literally."""
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))
