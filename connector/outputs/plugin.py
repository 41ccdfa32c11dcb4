"""What an output is to the rest of the app: the description (`Output`) each output module
exports as `OUTPUT`, which the registry (`connector.app.root.registry`) lists beside the
listener the composition root builds for it. Outputs take the core's neutral types (`Change`,
`Observation`) and never a source's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cheap to import: the registry reads descriptions when the app is indexed
    from connector.storage.keys import LedgerRow


@dataclass(frozen=True)
class Output:
    """`name`: the output's sink name, under which its status ledger keeps what it posted (and
    logs name it); `ledger`: the rows it writes for every observation, which ingest checks fit
    before it answers 202 (`connector.storage.keys`); `warm_up`: the modules its first change
    imports."""

    name: str
    ledger: tuple[LedgerRow, ...] = ()
    warm_up: tuple[str, ...] = ()
