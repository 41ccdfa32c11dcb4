"""The ingest door (`connector.core.door`) of a container, on its state table: built once with
the first ingest, None without a state store (every event is then queued, as before the door;
the queue function says what is missing). A container given `door=` (tests) keeps it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.settings import SettingsError

if TYPE_CHECKING:
    from connector.app.bootstrap import Container
    from connector.core.door import Door


def door_of(container: Container) -> Door | None:
    with container._build_lock:
        if "door" not in container.__dict__:
            container.__dict__["door"] = _build(container)
        door: Door | None = container.__dict__["door"]
        return door


def _build(container: Container) -> Door | None:
    from connector.core.door import Door
    from connector.storage.door_rows import TableStateRows

    if "store" not in container.__dict__:
        try:
            container._state_service()
        except SettingsError:
            return None
    store = container.store
    return Door(TableStateRows(lambda: store.table("deployments")))
