"""Retry-After is honoured before any next attempt of TaskCompleted (`gates/completion.py`):
within the invocation's wait budget (`connector.retries`) the POST is tried again after it;
past the budget the claim is kept until it has passed, and a 429 never counts as a POST whose
outcome is unknown. Azurite and the loopback Azure DevOps (429s with Retry-After injected)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector import retries
from connector.core.gate_transitions import CLAIM_TIMEOUT
from connector.core.gates import GateState
from connector.gates.store import GateStore
from tests.integration.test_gate_outages import event_posts, one_gate
from tests.integration.test_gates import completions, keeper_in, repo  # noqa: F401 - fixture


def posts_at(world) -> list[float]:
    return [c.at for c in world.azdo.calls("POST", "/events")]


def test_a_429_is_retried_after_its_retry_after_within_the_budget(repo):  # noqa: F811
    headers, message = one_gate(repo)
    repo.azdo.inject("/events", 429, retry_after="1", method="POST")

    repo.process(message)

    first, second = posts_at(repo)
    assert second - first >= 1.0  # not 0.15 s later
    assert [e["result"] for e in completions(repo, headers)] == ["succeeded"]
    [gate] = GateStore(repo.store).all_gates()
    assert gate.state == GateState.SUCCEEDED
    assert gate.completion_posts == 1  # the throttled POST did not count


def test_past_the_budget_no_attempt_comes_before_retry_after_and_none_counts(
    repo,  # noqa: F811
):
    headers, message = one_gate(repo)
    wait = 3600  # far past the invocation's 30 s budget
    repo.azdo.inject("/events", 429, count=5, retry_after=str(wait), method="POST")

    repo.process(message)  # no exception: nothing a redelivery could do sooner

    assert event_posts(repo) == 1
    [gate] = GateStore(repo.store).all_gates()
    assert gate.state == GateState.COMPLETING
    assert gate.completion_posts == 0
    assert gate.claimed_at is not None
    ready = gate.claimed_at + CLAIM_TIMEOUT  # when a sweep may take the claim over
    assert ready - datetime.now(UTC) >= timedelta(seconds=wait - 5)

    # A redelivery, and sweeps before Retry-After has passed, post nothing.
    repo.process(message, delivery_count=2)
    keeper_in(repo, minutes=3).sweep()
    keeper_in(repo, minutes=59).sweep()
    assert event_posts(repo) == 1

    # Afterwards the sweep posts (the fake still throttles: each 429 is uncounted again).
    keeper_in(repo, minutes=61).sweep()
    assert event_posts(repo) == 2
    [gate] = GateStore(repo.store).all_gates()
    assert gate.completion_posts == 0
    assert completions(repo, headers) == []


def test_wait_within_budget_charges_the_invocation() -> None:
    slept: list[float] = []
    with retries.wait_budget(10):
        assert retries.wait_within_budget(4, slept.append)
        assert retries.wait_within_budget(6, slept.append)
        assert not retries.wait_within_budget(0.5, slept.append)
    assert slept == [4, 6]
    assert not retries.wait_within_budget(retries.INVOCATION_WAIT_BUDGET + 1, slept.append)
