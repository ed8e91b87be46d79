"""``python -m toxmod.runs gc [tracking.uri=...]``: settle runs that a dead process left RUNNING."""

from __future__ import annotations

import sys

from toxmod.config import check_overrides_or_exit, compose_config
from toxmod.errors import USER_ERROR_EXIT_CODE, exit_on_user_error

COMMANDS = ("gc",)


@exit_on_user_error
def main() -> None:
    """Console entry point: the first argument names the command, the rest are config overrides."""
    from toxmod.stages.runs import collect_runs

    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m toxmod.runs {{{','.join(COMMANDS)}}} [key=value ...]", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    overrides = sys.argv[2:]
    check_overrides_or_exit("runs", overrides)
    collect_runs(compose_config("runs", overrides))


if __name__ == "__main__":
    main()
