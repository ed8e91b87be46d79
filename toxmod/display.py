"""Text from data made inert wherever it reaches a person: a terminal, a markdown report, a CSV file
opened in a spreadsheet, the MLflow UI.

A run name, a tag, a label or a path comes from whoever made the run or the data file. Shown as it
is, it can clear a screen or fake a line (ANSI escape sequences), restyle or crash a rich table
(``[bold]``, ``[/x]``), shift a markdown table's columns (``|``), inject HTML, or run a spreadsheet
formula (``=HYPERLINK(...)``). Each sink has one function here, and each writer calls it.
"""

from __future__ import annotations

import unicodedata
from typing import Any

# Control characters (C0, C1, DEL), format characters (bidirectional overrides) and line/paragraph
# separators: none of them is ever shown raw.
_HIDDEN = ("Cc", "Cf", "Zl", "Zp")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _escaped(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: Any, keep_newlines: bool = False) -> str:
    """``text`` with every control, format and separator character written as an escape (``\\x1b``):
    what a terminal or a log shows is what the text holds, never what it would make the screen do.
    ``keep_newlines``: plain newlines stay (a multi-line message of toxmod's own)."""
    text = str(text)
    if text.isprintable():  # the common case: nothing to do
        return text
    return "".join(
        char
        if (keep_newlines and char == "\n") or unicodedata.category(char) not in _HIDDEN
        else _escaped(char)
        for char in text
    )


def markdown_cell(value: Any) -> str:
    """A value for a markdown table cell or line: printable, with ``|``, backslashes, backticks,
    link brackets and HTML written so they render as text (a ``|`` no longer starts another column)."""
    text = printable(value)
    for raw, safe in (
        ("\\", "\\\\"),
        ("|", "\\|"),
        ("`", "\\`"),
        ("](", "]\\("),  # a link's [text](url) or [text][ref] no longer forms
        ("][", "]\\["),
        ("&", "&amp;"),
        ("<", "&lt;"),  # no tag opens without it (">" alone renders as text inside a cell)
    ):
        text = text.replace(raw, safe)
    return text


def markdown_code(value: Any) -> str:
    """A value shown as inline code in markdown (``split `<sha>` ``): printable, without a backtick
    that could end the code span early."""
    return "`" + printable(value).replace("`", "'") + "`"


def csv_cell(value: Any) -> Any:
    """A value for a CSV cell: numbers as they are; text printable, and text a spreadsheet would read
    as a formula (starting ``=``, ``+``, ``-``, ``@``) prefixed with ``'``."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = printable(value)
    if text.startswith(CSV_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
