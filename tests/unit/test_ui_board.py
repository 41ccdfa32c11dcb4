"""The board row behind the on-call index (connector/storage/board.py), on the memory twin of
the Table service: what a cluster runs now, late events of older commits, the recent commits,
the row's bound, and that processing keeps it (connector/outputs/board.py)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from connector.core.processing import Processor
from connector.core.tracking import ClusterResult, ObjectRef, ObjectState, Observation, Phase
from connector.outputs.board import BoardKeeper
from connector.storage import board as board_module
from connector.storage.board import BOARD_CHARS, RECENT_COMMITS, BoardTable
from connector.storage.rows import gathered_text
from connector.storage.tables import TableStore
from tests.fakes.memory_tables import MemoryTableService

T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
A, B = "a" * 40, "b" * 40
APPS = ObjectRef("Kustomization", "flux-system", "apps")


def table() -> tuple[BoardTable, TableStore]:
    store = TableStore(MemoryTableService().as_sdk())
    return BoardTable(lambda: store.table("board")), store


def ok(cluster: str) -> ClusterResult:
    return ClusterResult(cluster, Phase.SUCCEEDED, done=(APPS,))


def failed(cluster: str, message: str = "timeout") -> ClusterResult:
    state = ObjectState(Phase.FAILED, "HealthCheckFailed", message, T0, T0)
    return ClusterResult(cluster, Phase.FAILED, failed=((APPS, state),))


def test_a_cluster_moves_to_its_newest_commit_and_remembers_the_one_before() -> None:
    board, _ = table()
    assert board.note("prod", A, ok("eu"), Phase.SUCCEEDED, T0)
    assert board.note("prod", B, failed("eu"), Phase.FAILED, T0 + timedelta(minutes=5))
    (prod,) = board.boards()
    eu = prod.clusters["eu"]
    assert (eu.commit, eu.phase, eu.previous) == (B, "failed", A)
    assert eu.since == (T0 + timedelta(minutes=5)).isoformat()
    assert eu.failed == (str(APPS), "HealthCheckFailed", "timeout")
    assert [(c.commit, c.phase) for c in prod.commits] == [(B, "failed"), (A, "succeeded")]


def test_a_late_event_of_an_older_commit_does_not_take_a_cluster_back() -> None:
    board, _ = table()
    board.note("prod", B, ok("eu"), Phase.SUCCEEDED, T0 + timedelta(minutes=5))
    board.note("prod", A, failed("eu"), Phase.FAILED, T0)
    (prod,) = board.boards()
    assert (prod.clusters["eu"].commit, prod.clusters["eu"].phase) == (B, "succeeded")


def test_the_same_result_again_writes_nothing_and_keeps_since() -> None:
    board, _ = table()
    board.note("prod", A, ok("eu"), Phase.SUCCEEDED, T0)
    assert not board.note("prod", A, ok("eu"), Phase.SUCCEEDED, T0 + timedelta(minutes=9))
    board.note("prod", A, failed("eu"), Phase.FAILED, T0 + timedelta(minutes=10))
    eu = board.boards()[0].clusters["eu"]
    assert eu.since == T0.isoformat()
    assert eu.changed == (T0 + timedelta(minutes=10)).isoformat()


def test_recent_commits_are_the_newest_few() -> None:
    board, _ = table()
    for i in range(RECENT_COMMITS + 3):
        board.note("dev", f"{i:040x}", ok("d1"), Phase.SUCCEEDED, T0 + timedelta(minutes=i))
    commits = board.boards()[0].commits
    assert len(commits) == RECENT_COMMITS
    assert commits[0].commit == f"{RECENT_COMMITS + 2:040x}"


def test_the_row_stays_bounded_for_thousands_of_failing_clusters(monkeypatch) -> None:
    monkeypatch.setattr(board_module, "BOARD_CHARS", 50_000)  # the same rule, a smaller fleet
    board, store = table()
    long = "x" * 500
    for i in range(200):
        result = failed(f"cluster-{i:04d}", long)
        board.note("prod", A, result, Phase.FAILED, T0)
    row = dict(store.table("board").get_entity("env", "prod"))
    text = gathered_text(row, "clusters")
    assert len(text) <= 50_000
    entry = json.loads(text)["cluster-0000"]
    assert entry["failed"] == [str(APPS), "HealthCheckFailed"]  # the message went, the reason stays
    assert BOARD_CHARS * 2 + 64 * 1024 < 1024 * 1024  # UTF-16, plus the commits: under 1 MiB


def test_processing_keeps_the_board_once_per_move_of_a_cluster() -> None:
    store = TableStore(MemoryTableService().as_sdk())
    processor = Processor({}, store, [BoardKeeper.of(store)], clock=lambda: T0)
    board = BoardTable(lambda: store.table("board"))

    def observe(commit: str, phase: Phase, minutes: int) -> None:
        processor.process(
            Observation(
                cluster="eu",
                env="prod",
                obj=APPS,
                commit=commit,
                phase=phase,
                reason="ReconciliationSucceeded" if phase == Phase.SUCCEEDED else "Progressing",
                summary="",
                time=T0 + timedelta(minutes=minutes),
                message_id=uuid.uuid4().hex,
                is_source=False,
            )
        )

    observe(A, Phase.PROGRESSING, 0)
    observe(A, Phase.SUCCEEDED, 1)
    assert board.boards()[0].clusters["eu"].phase == "succeeded"
    observe(B, Phase.PROGRESSING, 5)
    eu = board.boards()[0].clusters["eu"]
    assert (eu.commit, eu.phase, eu.previous) == (B, "progressing", A)
