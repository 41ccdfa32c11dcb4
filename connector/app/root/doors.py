"""The ingest door (`connector.core.door`) of a container, on its state table: built once with
the first ingest, None without a state store (every event is then queued, as before the door;
the queue function says what is missing). A container given `door=` (tests) keeps it."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from connector.settings import Settings, SettingsError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from connector.core.door import Door
    from connector.storage.door_rows import Reader
    from connector.storage.tables import TableStore


class Container(Protocol):
    """What the door needs of the composition root's `Container` (which imports this module,
    so it is named here by its parts rather than imported)."""

    _build_lock: threading.RLock

    @property
    def settings(self) -> Settings: ...
    @property
    def credential(self) -> TokenCredential: ...
    @property
    def store(self) -> TableStore: ...


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
        from connector.storage.accounts import state_service

        try:
            state_service(container.settings, lambda: container.credential)
        except SettingsError:
            return None
    store = container.store
    return Door(
        TableStateRows(
            lambda: store.table("deployments"),
            lambda: _reader(container, store.table("deployments").table_name),
        )
    )


def _reader(container: Container, table: str) -> Reader:
    """The hot point read on the state store's account (`storage.point_read`); the SDK's own
    read where that cannot sign (a connection string without an account key, a store given to
    a test)."""
    from connector.storage.point_read import point_reader

    s = container.settings
    secret = s.state_storage or (None if s.state_storage_account_url else s.webjobs_storage)
    url = s.state_storage_account_url or (
        f"https://{s.webjobs_storage_account}.table.core.windows.net"
        if s.webjobs_storage_account and secret is None
        else None
    )
    try:
        if secret is not None:
            return point_reader(table, connection_string=secret.get_secret_value())
        return point_reader(table, account_url=url, credential=container.credential)
    except ValueError:
        return _SdkReader(container.store.table("deployments"))


class _SdkReader:
    def __init__(self, table: Any) -> None:
        self._table = table

    def read(self, partition: str, row: str) -> tuple[dict[str, Any], str]:
        found = self._table.get_entity(partition, row)
        return dict(found), str(found.metadata["etag"])
