"""Secrets never reach disk or logs: every error message, warning and recorded failure passes here.

A credential toxmod reads (an API key from the environment variable ``model.api_key_env`` names) is
registered when it is read; ``redact`` replaces it, and any ``Authorization`` header or bearer token,
with ``***`` wherever text leaves the process (the console, ``FAILED``, MLflow's ``failure_reason``,
a sweep's job status). A server that echoes the key back in its error text cannot leak it.
"""

from __future__ import annotations

import re

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words
_secrets: set[str] = set()
_HEADERS = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer\s+|basic\s+)?[^\s\"',}]+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{4,}")


def register_secret(value: str | None) -> None:
    """From now on ``redact`` masks ``value`` (an API key just read)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret, ``Authorization`` header value and bearer token masked."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _HEADERS.sub(lambda m: f"{m.group(1)}{m.group(2) or ''}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m.group(1)}{MASK}", text)


def holds_secret(text: str) -> bool:
    """Whether ``redact`` would change ``text``."""
    return redact(text) != text
