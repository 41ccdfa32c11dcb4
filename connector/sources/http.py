"""What every source's webhook shares: the refusal that becomes a 4xx/503 with a JSON body, the
size cap, cluster and environment names, the door check against the Table key limits, and
"202 only once queued". Each source keeps its own authentication and wire model.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from connector import telemetry
from connector.core.door import Arrival, Door, DoorUnavailableError
from connector.core.errors import ConnectorError
from connector.core.names import ORIGIN_NAME
from connector.core.tracking import ObjectRef
from connector.queue.sender import MessageSender, OutgoingMessage, QueueUnavailableError
from connector.settings import Settings
from connector.storage.keys import ObservationKeys
from connector.storage.rows import key_problem
from connector.web import Reply

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
RETRY_AFTER_SECONDS = "5"
NOT_CONFIGURED_RETRY_AFTER = "30"  # a setting must change first: no point in retrying sooner
CAUSES = {
    400: "malformed",
    401: "signature",
    403: "identity",  # a credential naming a cluster or environment it may not speak for
    405: "method",
    413: "too_large",
    422: "invalid",
    503: "not_configured",
}
# Object names as Kubernetes makes them (DNS-1123 labels and subdomains, kinds): `key()` leaves
# these characters unescaped, so the longest such name gives the longest keys. Matched on
# `kind/namespace/name` at once, one regex call instead of three: a part holding '/' fails it.
_PLAIN_PART = r"[A-Za-z0-9._-]{0,63}"
_PLAIN_OBJECT = re.compile(f"{_PLAIN_PART}/{_PLAIN_PART}/{_PLAIN_PART}")


class NamedObject(Protocol):
    """An object by its parts: a Flux event's involved object, an `ObjectRef`."""

    @property
    def kind(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...


class RejectedError(ConnectorError):
    def __init__(
        self, status: int, error: str, headers: dict[str, str] | None = None, **details: Any
    ) -> None:
        super().__init__(error)
        self.reply = Reply(status, {"error": error, **details}, headers or {})


def refused(rejected: RejectedError) -> Reply:
    """Count and log a refusal (never the body: it may hold anything) and answer it."""
    status = rejected.reply.status
    telemetry.events_rejected.add(1, {"cause": CAUSES.get(status, str(status))})
    logger.warning(
        "ingest.rejected", extra={"status": status, "error": rejected.reply.body["error"]}
    )
    return rejected.reply


def require_post(method: str) -> None:
    if method.upper() != "POST":
        raise RejectedError(405, "method not allowed: use POST")


def require_size(body: bytes) -> None:
    if len(body) > MAX_BODY_BYTES:
        raise RejectedError(413, f"body larger than {MAX_BODY_BYTES} bytes")


def parse(model: type[BaseModel], body: bytes | dict[str, Any], what: str) -> Any:
    """Validate `body` as `model`: 400 when it is not a JSON object, 422 naming bad fields."""
    try:
        if isinstance(body, dict):
            return model.model_validate(body)
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise RejectedError(400, "body is not valid JSON") from None
        if any(e["type"] == "model_type" and not e["loc"] for e in errors):
            raise RejectedError(400, "body must be a JSON object") from None
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in errors
        ]
        names = ", ".join(f["field"] for f in fields)
        raise RejectedError(422, f"invalid {what}: {names}", fields=fields) from None


def origin_name(key: str, value: str | None, field: str, hint: str) -> str:
    """A cluster or environment name by `ORIGIN_NAME`; `hint` says where the caller can set it."""
    if not value:
        raise RejectedError(
            422,
            f"event has no {key}: {hint}",
            fields=[{"field": field, "problem": "missing"}],
        )
    if not ORIGIN_NAME.fullmatch(value):
        raise RejectedError(
            422,
            f"invalid {key}: use letters, digits, '.', '_' or '-' (at most 63 characters)",
            fields=[{"field": field, "problem": "invalid characters or length"}],
        )
    return value


def environment_of(settings: Settings, cluster: str, field: str, hint: str) -> str:
    """The environment when the event names none: the one `ENVIRONMENTS` lists the cluster in,
    else `DEFAULT_ENV`. A cluster listed in several is ambiguous unless `DEFAULT_ENV` is one
    of them: guessing would post statuses and complete gates of the wrong environment."""
    listed = sorted(
        name for name, spec in settings.environments.items() if cluster in spec.clusters
    )
    default = settings.default_env
    if len(listed) == 1:
        return listed[0]
    if not listed or default in listed:
        return default
    raise RejectedError(
        422,
        f"event has no env and cluster {cluster!r} is in several ENVIRONMENTS "
        f"({', '.join(listed)}): {hint}",
        fields=[{"field": field, "problem": "ambiguous", "candidates": listed}],
    )


class KeyCheck:
    """The Table keys of one observation (`ObservationKeys`: the store's and the registered
    outputs' ledger rows) that would not fit, each named by one source's fields: `fields` gives
    them for each origin part ("env", "cluster", "object")."""

    def __init__(self, keys: ObservationKeys, fields: Mapping[str, tuple[str, ...]]) -> None:
        self._keys = keys
        missing = {p for parts in keys.parts.values() for p in parts} - set(fields)
        if missing:  # a source must name its field of every part a key is made of
            raise ValueError(f"no key fields for {', '.join(sorted(missing))}")
        self._fields = {
            role: [name for part in parts for name in fields[part]]
            for role, parts in keys.parts.items()
        }
        self._plain_fit = self._plain_keys_fit()

    def _plain_keys_fit(self) -> bool:
        """Whether every key of an object with plain parts of at most 63 characters fits, asked
        of the key builders once per handler: if a key format grows, the shortcut in `problems`
        turns itself off instead of admitting events the store cannot hold."""
        longest = "x" * 63
        keys = self._keys(longest, longest, ObjectRef(longest, longest, longest))
        return all(key_problem(value) is None for value in keys.values())

    def problems(self, env: str, cluster: str, obj: NamedObject) -> list[dict[str, str]]:
        """Cluster and env are plain names of at most 63 characters (`ORIGIN_NAME`); when the
        object's parts are too, every key fits and building them (the common case, a large share
        of ingest: docs/benchmarks.md) is skipped, and so is the `ObjectRef` they are built from."""
        if self._plain_fit and _PLAIN_OBJECT.fullmatch(f"{obj.kind}/{obj.namespace}/{obj.name}"):
            return []
        problems: list[dict[str, str]] = []
        ref = ObjectRef(obj.kind, obj.namespace, obj.name)
        for role, value in self._keys(env, cluster, ref).items():
            problem = key_problem(value)
            if problem is not None:
                problems.extend(
                    {"field": n, "problem": f"{role}: {problem}"} for n in self._fields[role]
                )
        return problems


def too_large(fields: list[dict[str, str]]) -> None:
    if fields:
        unique = list(dict.fromkeys(f["field"] for f in fields))
        raise RejectedError(
            422,
            f"event too large for the state store: {', '.join(unique)} (shorten them)",
            fields=fields,
        )


def enqueue(
    sender: MessageSender,
    message: OutgoingMessage,
    door: Door | None = None,
    arrival: Callable[[], Arrival] | None = None,
) -> Reply | None:
    """Send; None once Service Bus acknowledged, else the reply to answer: the 503 (the caller
    retries), or the door's 202 for a settled state re-sent (`connector.core.door`)."""
    if door is not None and arrival is not None:
        answered = _at_door(door, arrival(), message)
        if answered is not None:
            return answered
    try:
        sender.send(message)
    except QueueUnavailableError as exc:
        telemetry.events_rejected.add(1, {"cause": "queue_unavailable"})
        logger.error(  # noqa: TRY400 - the cause is named; SDK tracebacks add noise
            "ingest.queue_unavailable",
            extra={"message_id": message.message_id, "cause": str(exc)},
        )
        return Reply(
            503, {"error": "queue unavailable, retry later"}, {"Retry-After": RETRY_AFTER_SECONDS}
        )
    return None


def _at_door(door: Door, arrival: Arrival, message: OutgoingMessage) -> Reply | None:
    """None when the message is marked and must be sent; else the reply (202, or 503 when the
    state rows cannot be read: an unmarked send could be shadowed by a later re-send)."""
    try:
        if door.admit(arrival, message.message_id):
            return None
    except DoorUnavailableError as exc:
        telemetry.events_rejected.add(1, {"cause": "store_unavailable"})
        logger.error(  # noqa: TRY400 - the cause is named; SDK tracebacks add noise
            "ingest.store_unavailable",
            extra={"message_id": message.message_id, "cause": str(exc)},
        )
        return Reply(
            503,
            {"error": "state store unavailable, retry later"},
            {"Retry-After": RETRY_AFTER_SECONDS},
        )
    telemetry.events_dropped.add(1, {"why": "settled_at_door"})
    return Reply(202, f'{{"id":"{message.message_id}","settled":true}}')
