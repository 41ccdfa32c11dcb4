"""The ingest door's marks on an object state row (`core.door`): property `inflight`, JSON of
message id → ISO time. Read and written by `door_rows` (the door) and `tables` (the state store,
which removes a message's mark in the write it makes anyway, or in one of its own)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connector.core.door import live_marks
from connector.storage.rows import iso

MARKS = "inflight"


def marks_of(entity: Mapping[str, Any]) -> dict[str, datetime]:
    text = entity.get(MARKS)
    if not text:
        return {}
    return {m: datetime.fromisoformat(at) for m, at in json.loads(text).items()}


def marks_text(marks: Mapping[str, datetime]) -> str:
    return json.dumps({m: iso(at) for m, at in marks.items()}, separators=(",", ":"))


def released(entity: Mapping[str, Any] | None, message_id: str, now: datetime) -> dict[str, str]:
    """The property to merge so that `message_id` no longer holds the door open (expired marks
    go with it); {} when it holds no mark there."""
    if entity is None or MARKS not in entity:
        return {}
    marks = marks_of(entity)
    if message_id not in marks:
        return {}
    live = live_marks(marks, now)
    live.pop(message_id, None)
    return {MARKS: marks_text(live)}
