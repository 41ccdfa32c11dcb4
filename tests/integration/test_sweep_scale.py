"""The sweep is O(open gates + environments): each environment's rows and each roll-up are read
once per sweep and shared by its gates; a time budget stops it well before the function
timeout, and the next run resumes with the nearest deadlines first. Azurite and the loopback
Azure DevOps (`bench/sweep.py` measures it at 1,000 gates over 50,000 objects)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from connector.app.root.gates import gatekeeper
from connector.core.gates import GateState
from connector.gates.config import GatePolicy
from connector.gates.keeper import SWEEP_BUDGET_SECONDS, GateKeeper
from connector.gates.store import GateStore
from tests.integration.test_gates import A, completions, plan, register, repo  # noqa: F401 - fixture
from tests.world import kustomization


class CountingReads:
    """The deployment store, counting the environment-wide reads of roll-ups."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls: list[str] = []

    def commit_states(self, commit: str, env: str | None = None) -> Any:
        self.calls.append(f"commit_states {commit[:7]}")
        return self.store.commit_states(commit, env)

    def cluster_objects(self, env: str) -> Any:
        self.calls.append("cluster_objects")
        return self.store.cluster_objects(env)

    def environment_clusters(self, env: str) -> list[str]:
        self.calls.append("environment_clusters")
        return self.store.environment_clusters(env)

    def cluster_view(self, commit: str, env: str, cluster: str) -> Any:
        return self.store.cluster_view(commit, env, cluster)


class Ticks:
    """A monotonic clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def keeper(world: Any, reads: Any, *, minutes: int) -> GateKeeper:
    c = world.container
    return gatekeeper(
        GatePolicy.from_settings(c.settings),
        GateStore(c.store),
        reads,
        c.devops,
        c.pull_request_statuses,
        clock=lambda: datetime.now(UTC) + timedelta(minutes=minutes),
    )


def test_gates_of_one_environment_share_one_roll_up_per_sweep(repo):  # noqa: F811
    world = repo
    world.send(kustomization(A, "Progressing", time="2026-05-14T09:12:00Z"))
    for _ in range(5):
        assert register(world, plan(world), environment="dev", commit=A)[0] == 200
    reads = CountingReads(world.container.store)

    assert keeper(world, reads, minutes=0).sweep() == 5

    assert completions(world) == []  # still deploying: all five wait
    expected = ["cluster_objects", f"commit_states {A[:7]}", "environment_clusters"]
    assert sorted(reads.calls) == expected  # once for the five gates


def test_the_budget_stops_the_sweep_and_the_next_resumes_nearest_deadlines_first(
    repo,  # noqa: F811
):
    world = repo
    headers = {minutes: plan(world) for minutes in (50, 10, 40, 20, 30)}
    for minutes, head in headers.items():
        body = {"environment": "dev", "commit": A, "timeoutMinutes": minutes}
        assert register(world, head, **body)[0] == 200
    late = keeper(world, world.container.store, minutes=120)  # every deadline has passed

    # Each gate "takes" 10 s of the budget (the clock is read once per gate and once at start).
    assert late.sweep(budget_seconds=25, monotonic=Ticks(10)) == 2
    done = {e["jobId"].lower() for e in completions(world)}
    assert done == {headers[m]["JobId"].lower() for m in (10, 20)}

    assert late.sweep(budget_seconds=25, monotonic=Ticks(10)) == 2
    done = {e["jobId"].lower() for e in completions(world)}
    assert done == {headers[m]["JobId"].lower() for m in (10, 20, 30, 40)}

    assert late.sweep() == 1
    assert len(completions(world)) == 5
    gates = GateStore(world.container.store).all_gates()
    assert {g.state for g in gates} == {GateState.FAILED}  # timed out


def test_the_budget_ends_well_before_the_function_timeout() -> None:
    # host.json functionTimeout is 10 minutes and the timer fires every 5.
    assert SWEEP_BUDGET_SECONDS < 5 * 60
