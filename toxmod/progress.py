"""The terminal: one console for every module, and a scoring progress bar (texts/s).

Below the models in the layering, so a model can show progress without importing reports or runs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from toxmod.redact import redact

# Wide enough for the per-label table when output is piped to a file or CI log.
console = Console(width=None if sys.stdout.isatty() else 140)
# Notes beside machine-readable output on stdout (``compare format=csv``) go here.
notes_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


class RateColumn(ProgressColumn):
    """Items per second of a task (``texts/s``)."""

    def render(self, task: Any) -> Text:
        return Text(f"{task.speed or 0:>7.0f} texts/s")


def print_whole(renderable: Any) -> None:
    """Print a table without shrinking or cutting columns when the output is a pipe or a file."""
    if console.is_terminal:
        console.print(renderable)
        return
    width = console.measure(renderable, options=console.options.update_width(100_000)).maximum
    Console(file=console.file, width=max(width, console.width), color_system=None).print(renderable)


def warn(message: str) -> None:
    """A warning on one line, never wrapped (it is read in logs and searched for)."""
    console.print(f"[yellow]warning:[/] {escape(redact(message))}", soft_wrap=True)


@contextlib.contextmanager
def scoring_progress(total: int, show: bool = True) -> Iterator[Callable[[int], None]]:
    """A rich progress bar with texts/s for scoring; yields ``advance(n_texts)`` (silent off a terminal)."""
    columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeElapsedColumn())
    with Progress(
        *columns, console=console, transient=True, disable=not (show and console.is_terminal)
    ) as bar:
        task = bar.add_task("scoring", total=total)
        yield lambda n: bar.advance(task, n)


class StageClock:
    """The stages of a job, each printed with its elapsed time as it ends (``data 0.4 s``), and kept
    as ``seconds`` for the run's metrics (``stage_seconds/<name>``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        import time

        start = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        console.print(f"[dim]{name} {self.seconds[name]:.1f} s[/]", soft_wrap=True)

    def as_metrics(self) -> dict[str, float]:
        return {f"stage_seconds/{name}": value for name, value in self.seconds.items()}
