"""Live progress of ``up``: one row per step with its state and time (Rich Live on a terminal,
one line per finished step otherwise; nothing but the JSON document on stdout with --json)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("mlops_env")

_ICON = {"changed": "[green]✓[/green]", "unchanged": "[green]✓[/green]", "failed": "[red]✗[/red]",
         "skipped": "[yellow]-[/yellow]", "running": "[cyan]…[/cyan]"}


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

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.note = ""
            self.live.__exit__(*exc)
            self.live = None

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
            self.ui.console.print(f"[dim]  {msg}[/dim]")

    def step(self, kind: str, sid: str, **info: Any) -> None:
        with self.lock:
            row = self.rows.setdefault(sid, {"title": info.get("title", sid), "status": "running",
                                             "start": time.monotonic(), "line": "", "seconds": None})
            if kind == "start":
                row.update(status="running", start=time.monotonic(), title=info.get("title", sid),
                           line=info.get("message", ""))
            elif kind == "line":
                line = str(info.get("line", "")).strip()
                if line.startswith("mlops: "):
                    line = line[7:]
                if line:
                    row["line"] = line[:100]
            elif kind == "done":
                rep = info["report"]
                row.update(status=rep.status, seconds=rep.seconds, line=rep.message, title=rep.title)
        if kind == "done" and self.live is None and not self.ui.json_mode:
            self.ui.console.print(self._line(sid, self.rows[sid]))

    # -- rendering -----------------------------------------------------------------------
    def _line(self, sid: str, row: dict[str, Any]) -> str:
        secs = row["seconds"] if row["seconds"] is not None else time.monotonic() - row["start"]
        status = row["status"]
        icon = _ICON.get(status, "?")
        label = {"changed": "done", "unchanged": "ok", "running": "running"}.get(status, status)
        msg = row["line"]
        return f" {icon} {sid:<11} {label:<9} {secs:6.1f}s  [dim]{msg}[/dim]"

    def _render(self) -> Any:
        from rich.text import Text

        with self.lock:
            lines = [self._line(sid, row) for sid, row in self.rows.items()]
            if self.note and not any(r["status"] == "running" for r in self.rows.values()):
                lines.append(f"   [dim]{self.note}[/dim]")
        return Text.from_markup("\n".join(lines) if lines else "[dim]starting…[/dim]")
