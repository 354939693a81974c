"""Secret redaction: credentials registered once are scrubbed from every text we log, raise or report."""

from __future__ import annotations

import hashlib
import re
import threading

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_SECRET_PATTERNS = (
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer\s+)?[^\s'\",}]+"),
    re.compile(r"(?i)((?:access|refresh)_token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}&]+"),
    re.compile(r"(?i)(client_secret['\"]?\s*[:=]\s*['\"]?)[^\s'\",}&]+"),
)


def register_secret(value: str | None) -> None:
    """Remember a credential so that ``redact`` scrubs it from any text (logs, errors, reports)."""
    if value and len(value) >= 4:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


def redact(text: str) -> str:
    """Replace every registered secret and anything that looks like a credential with ``***``."""
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}***", text)
    return text


def credential_key(token: str) -> str:
    """A stable, non-reversible name for a credential (limiters are shared per credential)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]
