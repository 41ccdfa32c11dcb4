"""Encode events the way notification-controller does (Go `json.Marshal`), so signatures and
message ids are computed over the same bytes a real cluster would send."""

from __future__ import annotations

import json
from typing import Any

OBJECT_KEYS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion")
EVENT_KEYS = (
    "involvedObject",
    "severity",
    "timestamp",
    "message",
    "reason",
    "metadata",
    "reportingController",
    "reportingInstance",
)


def go_json(event: dict[str, Any]) -> bytes:
    """Compact, Go field order, sorted metadata, HTML-safe escapes, no trailing newline."""
    ordered: dict[str, Any] = {}
    for key in EVENT_KEYS:
        if key not in event:
            continue
        value = event[key]
        if key == "involvedObject":
            value = {k: value[k] for k in OBJECT_KEYS if k in value}
        elif key == "metadata":
            if not value:
                continue  # Go omits an empty map entirely
            value = dict(sorted(value.items()))
        ordered[key] = value
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode()
