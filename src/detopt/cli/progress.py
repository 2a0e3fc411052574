"""One progress display for long commands: the overall progress with its ETA, and the stage running now.

Shown on a terminal only (standard error); with output redirected, nothing but the commands' own
lines is written, so logs stay clean.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["StageProgress"]


class StageProgress:
    """``progress(stage, done, total)``: ``stage == overall`` (e.g. "iteration") drives the bar with the ETA;
    any other stage names what runs now, with its own count when it has one (e.g. "simulate 12/24")."""

    def __init__(self, overall: str = "iteration", label: str = "", enabled: bool | None = None) -> None:
        self.overall, self.label = overall, label or overall + "s"
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Progress | None = None
        self._main: TaskID | None = None

    def __enter__(self) -> StageProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stage]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._progress.__enter__()
            self._main = self._progress.add_task(self.label, total=None, stage="starting")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(kind, exc, tb)
            self._progress = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._progress is None or self._main is None:
            return
        if stage == self.overall:
            self._progress.update(self._main, completed=done, total=total)
        else:
            count = f" {done}/{total}" if total > 1 else ""
            self._progress.update(self._main, stage=f"{stage}{count}")
