"""What a benchmark page says about where its numbers come from: the command and the machine."""

from __future__ import annotations

import platform
import re
import shlex

FOLDERS = re.compile(r"(?<![\w.])/(?:[^\s,/=]+/)+")


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
