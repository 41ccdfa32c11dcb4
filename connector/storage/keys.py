"""Every Table key that processing one observation builds, so that ingest can refuse (422) an
event whose keys the store could not hold: the state store's own rows (`TableStore.record`,
`_point`) and the status-ledger rows each registered output writes (`LedgerRow`, RowKey
`status|<sink>|<context>` as in `connector.storage.ledger`).

Each key is named by a role ("object row", ...) and made of origin parts ("env", "cluster",
"object"): a source names its own event fields of each part, so a 422 names the caller's fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # cheap to import: output descriptions are read when the app is indexed
    from connector.core.tracking import ObjectRef

Part = Literal["env", "cluster", "object"]
Context = Callable[[str, str, "ObjectRef"], str]  # (env, cluster, object) → a ledger row's context


@dataclass(frozen=True)
class LedgerRow:
    """A status-ledger row an output writes for each observation: its role (named in a 422),
    the origin parts its context is made of, and the context itself."""

    role: str
    parts: tuple[Part, ...]
    context: Context


@dataclass(frozen=True)
class Ledger:
    """One output's ledger rows under its sink name."""

    sink: str
    rows: tuple[LedgerRow, ...]


# The origin parts of the state store's own keys (`connector.storage.tables`), by role.
_STORE: dict[str, tuple[Part, ...]] = {
    "object row": ("env", "cluster", "object"),
    "pointer partition": ("env", "cluster"),
    "pointer row": ("object",),
}


@dataclass(frozen=True)
class ObservationKeys:
    """The store's keys and the ledger rows of `ledgers` (the registered outputs')."""

    ledgers: tuple[Ledger, ...] = ()
    parts: dict[str, tuple[Part, ...]] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        parts = dict(_STORE)
        for ledger in self.ledgers:
            for row in ledger.rows:
                if row.role in parts:
                    raise ValueError(f"two keys named {row.role!r}: name each role once")
                parts[row.role] = row.parts
        object.__setattr__(self, "parts", parts)

    def __call__(self, env: str, cluster: str, obj: ObjectRef) -> dict[str, str]:
        """Role → key, the store's first, then each ledger's in order."""
        from connector.storage.rows import key

        keys = {
            "object row": key("obj", env, cluster, obj.kind, obj.namespace, obj.name),
            "pointer partition": key(env, cluster),
            "pointer row": key(obj.kind, obj.namespace, obj.name),
        }
        for ledger in self.ledgers:
            for row in ledger.rows:
                keys[row.role] = key("status", ledger.sink, row.context(env, cluster, obj))
        return keys
