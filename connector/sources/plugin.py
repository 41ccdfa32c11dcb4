"""What a source is to the rest of the app: the one description (`Source`) each source package
exports as `SOURCE`, from which the registry (`connector.app.root.registry`) derives the
Functions route, the handler, the translator and the warm-up; and what its per-source part of the
one ingest template (`connector.sources.ingest`) gives back: `Admitted`.

Cheap to import on purpose: `function_app` reads the routes when the host indexes the app, so a
description names its modules and builds its parts lazily (nothing here imports pydantic or the
core at module level).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from connector.core.door import Arrival
    from connector.core.tracking import Observation
    from connector.hmac_signing import Verified
    from connector.queue.envelope import Envelope
    from connector.queue.sender import OutgoingMessage
    from connector.settings import Settings
    from connector.sources.http import KeyCheck, NamedObject
    from connector.web import Reply, Request

E = TypeVar("E")
E_contra = TypeVar("E_contra", contravariant=True)

Translator = Callable[["Envelope", str], "Observation"]


class Handler(Protocol):
    def handle(self, request: Request) -> Reply: ...


@dataclass(frozen=True, slots=True)
class Admitted(Generic[E]):
    """One event let in by its source's `admit`: what the source read (`event`), where it comes
    from, the object and state it reports (for spans, logs and counters), the bytes to queue, and
    the verified signature when there is one (its MAC gives the message id)."""

    event: E
    cluster: str
    env: str
    obj: NamedObject
    reason: str
    commit: str | None
    queued: bytes
    signature: Verified | None = None


class Admission(Protocol[E]):
    """A source's own part of ingest: authenticate and validate a request (`RejectedError` for
    a 4xx/503), and build the message that queues what it admitted."""

    def admit(self, request: Request) -> Admitted[E]: ...

    def message(self, admitted: Admitted[E], received_at: datetime) -> OutgoingMessage: ...


@dataclass(frozen=True)
class Source(Generic[E]):
    """One event source, as the registry lists it.

    `name` is the envelope's `source`, the Functions function name and the span/log name;
    `route` its HTTP route (`/api/<route>`). `admission(settings, keys)` builds its `Admission`
    (`keys`: the Table key check with this source's `key_fields`, which name the event's fields
    of each origin part, "env", "cluster" and "object", in a 422). `arrival` is what the ingest
    door reads of an admitted event (`connector.sources.arrivals`), `translate` the processor's
    reading of a queued envelope, `warm_up` the modules its first request and message import."""

    name: str
    route: str
    doc: str
    admission: Callable[[Settings, KeyCheck], Admission[E]]
    arrival: Callable[[Admitted[E], datetime], Arrival]
    translate: Translator
    key_fields: Mapping[str, tuple[str, ...]]
    warm_up: tuple[str, ...] = ()


def lazy(module: str, name: str) -> Any:
    """`module.name`, imported on first call: a description stays cheap to import (see above)."""

    found: list[Any] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not found:
            found.append(getattr(importlib.import_module(module), name))
        return found[0](*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call
