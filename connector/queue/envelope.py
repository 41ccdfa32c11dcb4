"""What travels on the queue: one source event, as it arrived, plus where it came from and
which source translates it; and the stable ids of a delivery.

The message id is what Service Bus duplicate detection compares: the same delivery (a Flux
retry, a copy from a second Alert) gets the same id, any changed byte another.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SERVICE_BUS_ID_LIMIT = 128  # MessageId and SessionId maximum length
_PLAIN = re.compile(r"[A-Za-z0-9._-]*")


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    version: Literal[1] = Field(default=1, alias="v")
    source: str = "flux"  # the source that translates `event` (messages before 0.2 are Flux's)
    cluster: str
    env: str
    received_at: AwareDatetime = Field(alias="receivedAt")
    event: dict[str, Any]  # the source's own event; its translator validates it


def encode(
    cluster: str, env: str, received_at: datetime, raw_event: bytes, source: str = "flux"
) -> bytes:
    """The queue body. The event's raw bytes are embedded as they were signed (no re-encoding);
    cluster and env are JSON-encoded only when they need escaping (ingest validates them)."""
    head = (
        f'{{"v":1,"source":{_json_string(source)},"cluster":{_json_string(cluster)},'
        f'"env":{_json_string(env)},"receivedAt":"{received_at.isoformat()}","event":'
    )
    return b"".join((head.encode(), raw_event, b"}"))  # one copy of the event, not two


def _json_string(value: str) -> str:
    return f'"{value}"' if _PLAIN.fullmatch(value) else json.dumps(value)


class GateCheck(BaseModel):
    """Queued by gate registration: evaluate this gate (the deployment may already be done)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["gate-check"] = "gate-check"
    env: str
    gate: str


def decode(body: bytes | str) -> Envelope | GateCheck:
    """Parse a queue body; raises pydantic.ValidationError when it is neither message kind."""
    data = json.loads(body) if body else None
    if isinstance(data, dict) and data.get("kind") == "gate-check":
        return GateCheck.model_validate(data)
    return Envelope.model_validate_json(body)


def message_id(cluster: str, env: str, raw_event: bytes, source: str = "flux") -> str:
    """The id of an unsigned delivery (Argo CD, unsigned Flux): SHA-256 over its bytes with the
    cluster and environment. Same delivery (a retry, or a copy from a second Alert) → same id;
    any byte changed → another; 64 lowercase hex chars."""
    return _hash_of(f"{source}-event", cluster.encode(), env.encode(), raw_event)


def signed_message_id(
    cluster: str, env: str, algorithm: str, mac: bytes, source: str = "flux"
) -> str:
    """The id of a delivery whose signature was verified, from its MAC instead of its bytes: the
    check already hashed them (hashing large events twice was a large share of ingest). The MAC is
    HMAC(key, bytes), so a retry or a second Alert with the same secret gets the same id and any
    byte changed another, as with `message_id`; the prefix keeps the two kinds of id apart."""
    return _hash_of(f"{source}-signed", cluster.encode(), env.encode(), algorithm.encode(), mac)


def _hash_of(kind: str, *parts: bytes) -> str:
    # Each part length-prefixed: ("ab", "c") and ("a", "bc") must not meet.
    digest = hashlib.sha256(f"{kind}\0".encode())
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def session_id(cluster: str, kind: str, namespace: str, name: str) -> str:
    """Per-object ordering key `<cluster>/<kind>/<namespace>/<name>`, within Service Bus limits."""
    return bounded(f"{cluster}/{kind}/{namespace}/{name}")


def bounded(value: str, limit: int = SERVICE_BUS_ID_LIMIT) -> str:
    """`value` if short enough, else a readable prefix plus a hash of the whole (no collisions)."""
    if len(value) <= limit:
        return value
    suffix = "~" + hashlib.sha256(value.encode()).hexdigest()[:24]
    return value[: limit - len(suffix)] + suffix
