"""A throwaway output, "probe-out": it keeps every change it is told, and declares one ledger
row per observation, which ingest then checks fits as it does the commit statuses'. Its context
holds the object twice, so that it is the longest key and a test sees it checked."""

from __future__ import annotations

from connector.core.processing import Change
from connector.outputs.plugin import Output
from connector.storage.keys import LedgerRow

OUTPUT = Output(
    "probe-out",
    ledger=(
        LedgerRow(
            "probe status row",
            ("cluster", "object"),
            lambda env, cluster, obj: f"{cluster}={obj}={obj}",
        ),
    ),
    warm_up=(__name__,),
)


class ProbeOutput:
    """A `ChangeListener` that records what it is told."""

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def on_change(self, change: Change) -> None:
        self.changes.append(change)
