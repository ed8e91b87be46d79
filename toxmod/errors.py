"""User-facing errors: one line, naming the file, column or key that is wrong, and a non-zero exit."""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

USER_ERROR_EXIT_CODE = 2


class ToxmodError(Exception):
    """A problem with the user's input or configuration (printed without a traceback)."""

    exit_code = USER_ERROR_EXIT_CODE  # 1 for a check the command ran and the result failed


class DataError(ToxmodError):
    """A data file, column or value does not match what the config says."""


class SplitError(ToxmodError):
    """A split folder, manifest or ID list is missing, inconsistent or leaks."""


class ConfigError(ToxmodError):
    """A config key has a missing or invalid value."""


class DamagedFileError(ToxmodError):
    """A saved file (model, thresholds, run record) is missing, truncated, malformed or unexpected."""


class TrainingError(ToxmodError):
    """Training cannot go on (a diverged loss, an undefined monitored metric); says what to change."""


def require_positive_int(key: str, value: Any) -> int:
    """``value`` as an int >= 1, else a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}={value!r}: expected a positive integer")
    return value


def require_int_or_open(key: str, value: Any, open_values: str = "-1 or null") -> None:
    """``value`` an int, or null (open), else a ConfigError naming ``key``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key}={value!r}: expected an integer ({open_values}: open)")


def require_epochs_or_steps(prefix: str, max_epochs: Any, max_steps: Any) -> None:
    """A run needs ``<prefix>.max_epochs`` (>= 0) or ``<prefix>.max_steps`` (> 0): both open is an error."""
    if (max_epochs is None or int(max_epochs) < 0) and int(max_steps or -1) <= 0:
        raise ConfigError(f"{prefix}.max_epochs and {prefix}.max_steps are both open: set one of them")


def is_interrupt(error: BaseException) -> bool:
    """Ctrl-C: a KeyboardInterrupt, or the SystemExit(1) Lightning raises after its graceful shutdown."""
    return isinstance(error, KeyboardInterrupt) or isinstance(error.__context__, KeyboardInterrupt)


def exit_on_user_error(func: F) -> F:
    """Turn a ToxmodError raised by an entry point into ``error: ...`` on stderr and its exit code (2;
    1 for a check that ran and failed, such as the export's parity gate)."""

    from omegaconf.errors import MissingMandatoryValue

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ToxmodError as error:
            message, code = str(error), error.exit_code
        except MissingMandatoryValue as error:
            key = getattr(error, "full_key", None) or "a required key"
            message, code = f"{key} is required (pass {key}=...)", USER_ERROR_EXIT_CODE
        print(f"error: {message}", file=sys.stderr)
        _discard_unused_output_dir()
        sys.exit(code)

    return wrapper  # type: ignore[return-value]


def _discard_unused_output_dir() -> None:
    """A command refused before it wrote anything leaves no folder behind (Hydra makes the run
    directory, and its own ``.hydra/``, before the command starts)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        output = Path(HydraConfig.get().runtime.output_dir)
    except ValueError:  # not inside a Hydra run
        return
    if output.is_dir() and {path.name for path in output.iterdir()} <= {".hydra"}:
        shutil.rmtree(output)
