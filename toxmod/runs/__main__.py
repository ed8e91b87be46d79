"""``python -m toxmod.runs gc [remove_failed=true]``: settle runs that a dead process left RUNNING;
``python -m toxmod.runs show run=<run>``: a run's record and the environment its numbers came from."""

from __future__ import annotations

import sys

from toxmod.config import check_overrides_or_exit, compose_config, exit_on_user_error
from toxmod.errors import USER_ERROR_EXIT_CODE

COMMANDS = ("gc", "show")


@exit_on_user_error
def main() -> None:
    """Console entry point: the first argument names the command, the rest are config overrides."""
    from toxmod.stages.runs import collect_runs, show_run

    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m toxmod.runs {{{','.join(COMMANDS)}}} [key=value ...]", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    overrides = sys.argv[2:]
    check_overrides_or_exit("runs", overrides)
    command = {"gc": collect_runs, "show": show_run}[sys.argv[1]]
    command(compose_config("runs", overrides))


if __name__ == "__main__":
    main()
