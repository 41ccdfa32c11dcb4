"""The status ledger's `new` hint (an object's first state on a commit): the claim is created
without a read first, and when the row exists after all, the hint changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from connector.storage.ledger import StatusLedgerTable
from tests.fakes.memory_tables import MemoryTableService

COMMIT = "c" * 40
CONTEXT = "dev-1/Kustomization/flux-system/apps"


class CountingTable:
    """The memory twin's table, counting the requests the ledger makes."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self.requests: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._table, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.requests.append(name)
            return method(*args, **kwargs)

        return counted


@pytest.fixture
def table() -> CountingTable:
    return CountingTable(MemoryTableService().create_table_if_not_exists("ledger"))


@pytest.fixture
def ledger(table: CountingTable) -> StatusLedgerTable:
    return StatusLedgerTable(lambda: table, "azdo")  # type: ignore[arg-type, return-value]


def test_a_new_context_is_claimed_without_a_read(table, ledger) -> None:
    version = ledger.claim_status(COMMIT, CONTEXT, "pending", "reconciling", new=True)

    assert version is not None
    assert table.requests == ["create_entity"]


def test_without_the_hint_a_claim_reads_first(table, ledger) -> None:
    assert ledger.claim_status(COMMIT, CONTEXT, "pending", "reconciling") is not None
    assert table.requests == ["get_entity", "create_entity"]


def test_a_posted_context_is_not_claimed_again_whatever_the_hint(table, ledger) -> None:
    version = ledger.claim_status(COMMIT, CONTEXT, "succeeded", "healthy")
    assert version is not None
    assert ledger.finish_status(COMMIT, CONTEXT, version) is None
    table.requests.clear()

    assert ledger.claim_status(COMMIT, CONTEXT, "succeeded", "healthy", new=True) is None
    assert table.requests == ["create_entity", "get_entity"]  # the create found the row


def test_a_held_context_is_marked_dirty_whatever_the_hint(ledger) -> None:
    held = ledger.claim_status(COMMIT, CONTEXT, "pending", "reconciling")
    assert held is not None

    assert ledger.claim_status(COMMIT, CONTEXT, "succeeded", "healthy", new=True) is None

    # The holder, letting go, is told to post the newer state.
    assert ledger.finish_status(COMMIT, CONTEXT, held) is not None
