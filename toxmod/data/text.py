"""Text normalization used for de-duplication and leakage checks."""

from __future__ import annotations

import re
import unicodedata

_URL = re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)@\w+")
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Fold case, Unicode forms, whitespace, URLs and @handles so near-copies compare equal."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _URL.sub(" <url> ", text)
    text = _HANDLE.sub(" @user ", text)
    return _SPACE.sub(" ", text).strip()
