"""What every benchmark script shares: its command line, where its numbers come from (the command, the
machine, the code), how they are written (JSON for machines, a markdown page for people), and timing
candidates side by side.

A script builds its parser with ``arguments`` (``--output`` and, for a script that writes a page,
``--markdown``), puts ``provenance(...)`` in its record and writes it with ``write_results``; timings
that are compared come from ``interleaved`` (A B A B ..., medians), never from runs minutes apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
FOLDERS = re.compile(r"(?<![\w.])/(?:[^\s,/=]+/)+")


def arguments(
    doc: str | None, results: str | None = None, markdown: Path | None = None
) -> argparse.ArgumentParser:
    """The script's parser: its docstring as the help, ``--output`` (``benchmarks/results/<results>.json``)
    and, for a script that writes a page, ``--markdown`` (its page under ``docs/`` by default)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if results is not None:
        parser.add_argument(
            "--output", type=Path, default=RESULTS / f"{results}.json", help="the JSON record"
        )
    if markdown is not None:
        parser.add_argument("--markdown", type=Path, default=markdown, help="the markdown page written")
    return parser


def shown_command(script: str, argv: list[str]) -> str:
    """The command as run, with each absolute path's folders shown as ``<runs>/`` (docs stay portable)."""
    return f"python benchmarks/{script} " + " ".join(shlex.quote(FOLDERS.sub("<runs>/", a)) for a in argv)


def machine() -> str:
    """The CPU beside every figure (its model, cores and the instruction sets that change kernels)."""
    from toxmod.environment import cpu

    here = cpu()
    return (
        f"{here['model']}, {here['cores']} cores ({', '.join(here['isa'])}), {platform.machine()}, "
        f"Python {platform.python_version()}, CPU only"
    )


def code_revision(checkout: Path = ROOT) -> str:
    """The checkout's short commit, ``+changes`` when it has uncommitted edits (``unknown`` outside git)."""
    run = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    if run.returncode != 0:
        return "unknown"
    dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return run.stdout.strip() + ("+changes" if dirty else "")


def provenance(script: str, argv: list[str] | None = None) -> dict[str, str]:
    """Where a record's numbers come from: the command, the machine, the code and when."""
    return {
        "command": shown_command(script, sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "code": code_revision(),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_results(
    record: Mapping[str, Any], output: Path, markdown: str | None = None, page: Path | None = None
) -> None:
    """The JSON record and its markdown page, each written whole (a temporary file renamed into place:
    an interrupted benchmark leaves the previous results, never half of new ones)."""
    _write_whole(output, json.dumps(record, indent=2) + "\n")
    if markdown is not None and page is not None:
        _write_whole(page, markdown)


def _write_whole(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def interleaved(
    candidates: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds of each candidate, run in turn (A B A B ...) ``repeats`` times after ``warmup`` untimed
    rounds: drift of the machine (other load, clocks, caches) falls on every candidate alike."""
    for _ in range(warmup):
        for run in candidates.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, run in candidates.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def medians(times: Mapping[str, list[float]]) -> dict[str, float]:
    """The median of each candidate's times."""
    return {name: statistics.median(values) for name, values in times.items()}
