"""The terminal: one console for every module, and a scoring progress bar (texts/s).

Below the models in the layering, so a model can show progress without importing reports or runs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from toxmod.display import printable
from toxmod.redact import redact


class InertConsole(Console):
    """A console that shows every string as text: no rich markup is parsed from it (a run named
    ``[/x]`` neither crashes a table nor restyles it) and control characters are shown escaped (an
    ANSI sequence in a tag cannot clear the screen). toxmod's own styling goes through ``styled``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        kwargs["markup"] = False
        return super().render_str(printable(text, keep_newlines=True), **kwargs)


def styled(label: str, rest: str = "", style: str = "bold") -> Text:
    """``label`` in ``style``, then ``rest`` as plain text (shown inert, as everything printed)."""
    return Text.assemble((label, style), printable(rest, keep_newlines=True))


# Wide enough for the per-label table when output is piped to a file or CI log.
console = InertConsole(width=None if sys.stdout.isatty() else 140)
# Notes beside machine-readable output on stdout (``compare format=csv``) go here.
notes_console = InertConsole(stderr=True, width=None if sys.stderr.isatty() else 140)


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
    InertConsole(file=console.file, width=max(width, console.width), color_system=None).print(renderable)


def warn(message: str) -> None:
    """A warning on one line, never wrapped (it is read in logs and searched for)."""
    console.print(styled("warning:", f" {redact(message)}", "yellow"), soft_wrap=True)


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
        console.print(styled(f"{name} {self.seconds[name]:.1f} s", style="dim"), soft_wrap=True)

    def as_metrics(self) -> dict[str, float]:
        return {f"stage_seconds/{name}": value for name, value in self.seconds.items()}


class Ticker:
    """Progress of a long step that has no bar (a classical fit's labels, folds and boosting rounds):
    ``label: done/total, elapsed, ~left`` at most every ``every`` seconds, on a terminal and off it."""

    def __init__(self, label: str, total: int, every: float = 10.0) -> None:
        import time

        self.label, self.total, self.every = label, max(int(total), 1), every
        self.start = self.last = time.perf_counter()

    def tick(self, done: int, force: bool = False) -> None:
        import time

        now = time.perf_counter()
        if not force and now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.start
        left = elapsed / done * (self.total - done) if done else float("nan")
        eta = f", ~{left:.0f} s left" if done < self.total and left == left else ""
        console.print(
            styled(f"{self.label}: {done}/{self.total}, {elapsed:.0f} s{eta}", style="dim"), soft_wrap=True
        )
