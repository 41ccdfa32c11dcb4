"""The registered plug-ins: every event source and every output, in one place.

Derived from it: the source routes of `function_app.py` (one function each, named as the
source), their entry points (`connector.app.functions.entrypoints.webhook`), the handlers,
translators, table keys and listeners of the composition root (`bootstrap.Container`), and the
warm-up's modules (`connector.app.functions.warmup.modules`).

A new source is a package exporting `SOURCE` (`connector.sources.plugin.Source`), added to
`SOURCES`; a new output is a `ChangeListener` module and its description
(`connector.outputs.plugin.Output`, in a module cheap to import: the shipped ones are in
`connector.outputs.sinks`), added to `OUTPUTS` with the listener the container builds for it.
Nothing else changes.

`function_app` imports this module when the host indexes the app: the descriptions are cheap to
import (nothing but the plug-in contracts); what they describe is imported when first used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from connector.outputs import sinks
from connector.outputs.plugin import Output
from connector.sources import argocd, flux

if TYPE_CHECKING:
    from connector.core.door import Door
    from connector.core.processing import ChangeListener
    from connector.core.tracking import Observation
    from connector.queue.envelope import GateCheck
    from connector.queue.sender import MessageSender
    from connector.settings import Settings
    from connector.sources.plugin import Handler, Source, Translator
    from connector.storage.keys import ObservationKeys
    from connector.storage.tables import TableStore


class Container(Protocol):
    """What the registry needs of the composition root (`bootstrap.Container`, which imports
    this module: named here, not imported back; mypy checks that the root has it)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def sender(self) -> MessageSender: ...
    @property
    def store(self) -> TableStore: ...
    @property
    def commit_statuses(self) -> ChangeListener: ...
    @property
    def gatekeeper(self) -> ChangeListener: ...
    @property
    def spektate(self) -> ChangeListener | None: ...
    @property
    def subscribers(self) -> ChangeListener | None: ...


@dataclass(frozen=True)
class Registered:
    """A listener of processed changes: the output's description, and how the container builds
    it (None: not configured, left out)."""

    output: Output
    build: Callable[[Container], ChangeListener | None]


# How the container builds each listener (functions, not lambdas: typed against the container).
def _statuses(c: Container) -> ChangeListener:
    return c.commit_statuses


def _gates(c: Container) -> ChangeListener:
    return c.gatekeeper


def _board(c: Container) -> ChangeListener:
    from connector.outputs.board import BoardKeeper  # keeps the on-call pages' index

    return BoardKeeper.of(c.store)


def _spektate(c: Container) -> ChangeListener | None:
    return c.spektate


def _subscribers(c: Container) -> ChangeListener | None:
    return c.subscribers


SOURCES: tuple[Source[Any], ...] = (flux.SOURCE, argocd.SOURCE)

# The gates are no output (they complete pipeline gates) but listen among them. Their
# pull-request statuses have a sink of their own (`sinks.PR_STATUS_SINK`), keyed by pull
# request, not by observation: no ledger rows for ingest to check.
GATES = Output("gates", warm_up=("connector.gates.keeper",))

# Told in this order; each runs even if one failed (raised after all).
OUTPUTS: tuple[Registered, ...] = (
    Registered(sinks.COMMIT_STATUSES, _statuses),
    Registered(GATES, _gates),
    Registered(sinks.BOARD, _board),
    Registered(sinks.SPEKTATE, _spektate),
    Registered(sinks.SUBSCRIBERS, _subscribers),
)


def source(name: str) -> Source[Any]:
    found = next((s for s in SOURCES if s.name == name), None)
    if found is None:
        raise KeyError(f"no source named {name!r} is registered")
    return found


def webhook(container: Container, name: str, door: Door | None) -> Handler:
    """The handler of source `name`, built with the container's parts."""
    from connector.sources.http import KeyCheck
    from connector.sources.ingest import Ingest

    plugin = source(name)
    keys = KeyCheck(observation_keys(), plugin.key_fields)
    admission = plugin.admission(container.settings, keys)
    return Ingest(plugin.name, admission, plugin.arrival, container.sender, door=door)


def translators() -> dict[str, Translator]:
    return {s.name: s.translate for s in SOURCES}


def observation_keys() -> ObservationKeys:
    """Every Table key processing an observation builds: the store's, and each output's
    ledger rows under its sink name."""
    from connector.storage.keys import Ledger, ObservationKeys

    outputs = [entry.output for entry in OUTPUTS]
    return ObservationKeys(tuple(Ledger(o.name, o.ledger) for o in outputs if o.ledger))


def listeners(container: Container) -> list[ChangeListener]:
    built = (entry.build(container) for entry in OUTPUTS)
    return [listener for listener in built if listener is not None]


def source_modules() -> Iterator[str]:
    """What the sources' first requests and messages import (cheap to list)."""
    return (m for s in SOURCES for m in s.warm_up)


def output_modules() -> Iterator[str]:
    """What the outputs' first changes import."""
    return (m for entry in OUTPUTS for m in entry.output.warm_up)


def read(body: bytes, message_id: str | None) -> Observation | GateCheck:
    """A queued message read with the registered sources' translators (`connector.sources`)."""
    from connector import sources

    return sources.read(body, message_id, translators())
