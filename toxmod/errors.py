"""User-facing errors: one line, naming the file, column or key that is wrong, and a non-zero exit."""

from __future__ import annotations

import errno
from typing import Any

USER_ERROR_EXIT_CODE = 2
# The per-stage folders under paths.output_dir (``outputs/<task_name>/<time>``).
STAGE_FOLDERS = ("train", "evaluate", "export", "predict", "report", "compare", "select", "split", "pretrain")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no space, quota, file size limit
SQLITE_FULL = ("database or disk is full", "disk I/O error")  # SQLite's words for the same


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


class DiskFullError(ToxmodError):
    """A write failed for lack of space (or over a file-size limit): one line naming where."""

    exit_code = 1


def disk_full(error: BaseException) -> DiskFullError | None:
    """``error`` (or what caused it) as a ``DiskFullError`` when a write failed for lack of space:
    an ``OSError`` (ENOSPC, EDQUOT, EFBIG) naming its file, or SQLite's full / write-I/O error."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, DiskFullError):
            return seen
        if isinstance(seen, OSError) and seen.errno in DISK_FULL:
            return DiskFullError(f"{seen.filename or 'a file'}: no space left to write ({seen.strerror})")
        text = str(seen)
        for phrase in SQLITE_FULL:
            if phrase in text:
                return DiskFullError(
                    f"the SQLite tracking store could not write ({phrase}): is the disk full?"
                )
        seen = seen.__cause__ or seen.__context__
    return None


class StoppedEarly(Exception):  # noqa: N818 - an outcome, not a fault
    """A run stopped on purpose before it finished (a search's pruner stopped it): its tracking run
    ends KILLED, not FAILED, with ``tags`` saying why."""

    tags: dict[str, str] = {}


class Terminated(BaseException):  # noqa: N818 - named for the signal, like KeyboardInterrupt
    """SIGTERM, raised where the process is, so every ``finally`` and clean-up runs (a partial
    output removed, the run marked FAILED) before the process exits."""

    exit_code = 143  # 128 + SIGTERM, what a shell reports for a process ended by it


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises ``Terminated`` in the main thread instead of ending the process
    where it stands (which would leave a run RUNNING and a ``.partial`` file behind)."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        raise Terminated("SIGTERM")

    signal.signal(signal.SIGTERM, handler)


INTERRUPT_EXIT_CODE = 130  # 128 + SIGINT


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
