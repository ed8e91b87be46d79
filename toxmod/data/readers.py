"""Reading tabular text data: CSV, TSV and JSONL, optionally gzipped, chosen by file extension."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from toxmod.errors import DataError

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


def table_format(path: Path) -> str:
    """'csv', 'tsv' or 'jsonl' from the file name (``.gz`` is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    formats = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
    if suffix not in formats:
        raise DataError(
            f"data file {path}: unsupported extension {suffix or '(none)'!r}; "
            f"expected one of {', '.join(SUPPORTED_SUFFIXES)} (optionally .gz)"
        )
    return formats[suffix]


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a data file as strings (empty cells stay empty strings, never NaN)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"data file {path} does not exist (set data.path, or TOXMOD_DATASETS for shared data)"
        )
    fmt = table_format(path)
    try:
        if fmt == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            frame = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"data file {path}: cannot be read as {fmt}: {first_line}") from error
    if frame.empty:
        raise DataError(f"data file {path} has no rows")
    return frame
