"""Keeps the on-call index's board (`connector.storage.board`) as events are processed.

Told of every live observation, it writes only when the event moved its cluster's result on the
commit (the environment's tally says so, at no extra read): about twice per cluster and rollout.
A redelivery of a change not yet settled notes it again (a crash may have come before the board
write); the board then writes nothing when it already says the same.
"""

from __future__ import annotations

from connector.core.processing import Change
from connector.core.tracking import Verdict
from connector.storage.board import BoardTable
from connector.storage.tables import TableStore


class BoardKeeper:
    def __init__(self, board: BoardTable) -> None:
        self._board = board

    @classmethod
    def of(cls, store: TableStore) -> BoardKeeper:
        return cls(store.board())

    def on_change(self, change: Change) -> None:
        redelivered = change.recorded.verdict == Verdict.UNCHANGED
        if not (change.cluster_changed() or redelivered):
            return
        result = change.environment()
        mine = next((c for c in result.clusters if c.cluster == change.obs.cluster), None)
        if mine is None:
            return  # a cluster its environment does not expect: not on the board
        self._board.note(change.obs.env, change.commit, mine, result.phase, change.obs.time)
