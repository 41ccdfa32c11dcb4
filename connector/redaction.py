"""Removing credentials from text that leaves the process (error messages, logs, statuses).

Known secrets are removed in every form we send them (raw, and inside a Basic header's base64);
tokens we never saw (a managed identity's bearer token echoed by a proxy) are caught by shape.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Final

MASK: Final = "***"
# A JWT (three base64url parts, the first starting with '{"' encoded) and any Basic/Bearer value.
_SHAPES: Final = (
    re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
)


def secret_forms(secrets: Iterable[str | None]) -> tuple[str, ...]:
    """Each secret as sent: raw and as the base64 of `:secret` (Basic auth with an empty user).
    Longest first, so that a form containing another is removed whole."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms.add(secret)
            forms.add(base64.b64encode(f":{secret}".encode()).decode("ascii"))
    return tuple(sorted(forms, key=len, reverse=True))


def redact(text: str, forms: Iterable[str] = ()) -> str:
    for form in forms:
        text = text.replace(form, MASK)
    for shape in _SHAPES:
        text = shape.sub(_mask_match, text)
    return text


def _mask_match(match: re.Match[str]) -> str:
    scheme = match.group(1) if match.re.groups else None
    return f"{scheme} {MASK}" if scheme else MASK
