"""Gates judged by the environment's tally (`GateKeeper._evaluate_tallied`): a cluster that moves
tells the waiting task its progress at the cost of one cluster, and only the full roll-up, which
follows descendant commits, completes a gate."""

from __future__ import annotations

import pytest

from connector.core import rollup
from connector.gates.store import GateStore
from tests.integration.test_gates import A, B, completions, plan, register
from tests.world import REPO, kustomization

pytestmark = pytest.mark.azurite

PROD = '{"prod":{"clusters":["prod-eu","prod-us","prod-asia"]}}'


@pytest.fixture
def full_rollups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The commits of every full roll-up, counted on the way through (behaviour unchanged)."""
    calls: list[str] = []
    original = rollup.Rollup.environment

    def counted(self, commit, env, **kwargs):
        calls.append(commit)
        return original(self, commit, env, **kwargs)

    monkeypatch.setattr(rollup.Rollup, "environment", counted)
    return calls


@pytest.fixture
def prod(world):
    world.azdo.add_commit(REPO, A, "Merged PR 41: first change")
    world.azdo.add_commit(REPO, B, "Merged PR 42: second change", parents=[A])
    world.configure(ENVIRONMENTS=PROD)
    return world


def waiting_gate(world, commit: str = A) -> dict[str, str]:
    headers = plan(world)
    status, _ = register(world, headers, environment="prod", commit=commit)
    assert status == 200
    world.deliver_queued()  # the registration's gate check (a full roll-up)
    return headers


def test_a_cluster_that_moves_tells_its_progress_from_the_tally(prod, full_rollups):
    headers = waiting_gate(prod)
    full_rollups.clear()

    prod.send(
        kustomization(A, "Progressing", time="2026-05-14T09:12:00Z"), cluster="prod-eu", env="prod"
    )
    prod.send(kustomization(A), cluster="prod-eu", env="prod")

    assert full_rollups == []
    assert completions(prod) == []
    lines = [
        line.split(" ", 1)[1] for line in prod.azdo.feed_lines(headers["PlanId"], headers["JobId"])
    ]
    assert lines[-3:] == [
        "prod: prod-asia: waiting for a report of aaaaaaaa",
        "prod: prod-eu: healthy on aaaaaaaa",
        "prod: prod-us: waiting for a report of aaaaaaaa",
    ]


def test_the_full_roll_up_completes_the_gate(prod, full_rollups):
    headers = waiting_gate(prod)
    prod.send(kustomization(A), cluster="prod-eu", env="prod")
    prod.send(kustomization(A), cluster="prod-us", env="prod")
    assert full_rollups == [A]  # the registration's check only
    assert completions(prod) == []

    prod.send(kustomization(A), cluster="prod-asia", env="prod")

    assert full_rollups == [A, A]  # the tally said all healthy: the full roll-up confirmed it
    [done] = completions(prod, headers)
    assert done["result"] == "succeeded"


def test_a_failure_is_judged_by_the_full_roll_up(prod, full_rollups):
    headers = waiting_gate(prod)
    full_rollups.clear()

    prod.send(kustomization(A, "HealthCheckFailed"), cluster="prod-us", env="prod")

    assert full_rollups == [A]
    [done] = completions(prod, headers)  # no grace in these settings
    assert done["result"] == "failed"


def test_once_a_descendant_runs_only_the_full_roll_up_judges_the_gate(prod, full_rollups):
    """prod-eu skips A for its child B; the others then finish A. The tally of A alone would
    wait for prod-eu forever (until the sweep); the full roll-up follows it to B."""
    headers = waiting_gate(prod)
    prod.send(kustomization(B), cluster="prod-eu", env="prod")
    [gate] = GateStore(prod.container.store).open_gates("prod")
    assert gate.descendant_seen

    prod.send(kustomization(A), cluster="prod-us", env="prod")
    assert completions(prod) == []
    prod.send(kustomization(A), cluster="prod-asia", env="prod")

    [done] = completions(prod, headers)
    assert done["result"] == "succeeded"


def test_a_descendant_deployed_before_the_gate_is_seen_by_its_check(prod):
    prod.send(kustomization(B), cluster="prod-eu", env="prod")
    prod.send(kustomization(A), cluster="prod-us", env="prod")
    headers = waiting_gate(prod)
    [gate] = GateStore(prod.container.store).open_gates("prod")
    assert gate.descendant_seen

    prod.send(kustomization(A), cluster="prod-asia", env="prod")

    [done] = completions(prod, headers)
    assert done["result"] == "succeeded"
