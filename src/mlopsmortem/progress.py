"""Progress bars on a terminal, silence when piped or under --quiet."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_enabled(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@dataclass
class ProgressBar:
    """A task bar that counts done items and errors; a no-op when disabled."""

    description: str
    enabled: bool
    _progress: Progress | None = None
    _task: int | None = None
    errors: int = 0
    done: int = 0
    _started: float = field(default_factory=time.monotonic)

    def start(self, total: int) -> None:
        self._started = time.monotonic()
        if self._progress is not None:
            self._task = self._progress.add_task(self.description, total=total, extra="")

    def advance(self, *, error: bool = False) -> None:
        self.done += 1
        self.errors += int(error)
        if self._progress is not None and self._task is not None:
            rate = self.done / max(time.monotonic() - self._started, 1e-6)
            self._progress.update(
                self._task, advance=1, extra=f"{self.errors} errors, {rate:.1f}/s"
            )


@contextmanager
def progress_bar(description: str, *, quiet: bool) -> Iterator[ProgressBar]:
    enabled = progress_enabled(quiet)
    if not enabled:
        yield ProgressBar(description, False)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        yield ProgressBar(description, True, progress)
