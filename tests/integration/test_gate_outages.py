"""Gates against an Azure DevOps that refuses or fails everything optional (#11.2): plan and
record look-ups, the live feed, the stored log and the PR status never block TaskCompleted; a lost
TaskCompleted answer costs at most one more POST; only TaskCompleted's own refusal closes a gate
unsent, with the reason visible everywhere an operator looks."""

from __future__ import annotations

import pytest

from connector.core.gates import GateState
from connector.devops.client import TransientAzureDevOpsError
from connector.gates.store import GateStore
from tests.gate_views import cli_gates, deployments_view
from tests.integration.test_gates import A, C, completions, keeper_in, plan, register
from tests.world import REPO, kustomization

pytestmark = pytest.mark.azurite

GATES = 4


@pytest.fixture
def repo(world):
    world.azdo.add_commit(REPO, A, "Merged PR 41: first change")
    world.azdo.add_commit(REPO, C, "Merged PR 43: other change")
    world.azdo.add_pull_request(41, REPO, status="completed", last_merge_commit=A)
    world.configure(ENVIRONMENTS='{"dev":{"clusters":["dev-1"]},"prod":{"clusters":["prod-1"]}}')
    return world


def storm(world) -> dict[str, tuple[dict, str]]:
    """Gates on two environments: dev deploys A (succeeds), prod deploys C (fails); one dev gate
    waits for a pull request. Returns each gate's headers and the result it must get."""
    expected = {}
    for _ in range(GATES):
        headers = plan(world)
        assert register(world, headers, environment="dev", commit=A)[0] == 200
        expected[headers["JobId"]] = (headers, "succeeded")
        headers = plan(world)
        assert register(world, headers, environment="prod", commit=C)[0] == 200
        expected[headers["JobId"]] = (headers, "failed")
    headers = plan(world)
    assert register(world, headers, environment="dev", pullRequestId=41)[0] == 200
    expected[headers["JobId"]] = (headers, "succeeded")
    world.deliver_queued()
    return expected


def deploy(world) -> None:
    world.send(kustomization(A), cluster="dev-1", env="dev")
    world.send(
        kustomization(C, "HealthCheckFailed", message="health check failed after 5m"),
        cluster="prod-1",
        env="prod",
    )


def assert_each_completed_once(world, expected) -> None:
    for headers, result in expected.values():
        assert [e["result"] for e in completions(world, headers)] == [result], headers["JobId"]
    assert len(world.azdo.calls("POST", "/events")) == len(expected)
    gates = GateStore(world.store).all_gates()
    assert {g.state for g in gates} <= {GateState.SUCCEEDED, GateState.FAILED}


def test_every_gate_of_the_storm_gets_one_task_completed_with_its_result(repo):
    # GIVEN gates in two environments against the strict fake (documented versions only)
    expected = storm(repo)
    # WHEN dev succeeds and prod fails
    deploy(repo)
    # THEN every gate gets exactly one TaskCompleted with its own result
    assert_each_completed_once(repo, expected)
    assert repo.azdo.contract_violations == []


def refuse_every_optional_call(world, status: int) -> None:
    many = 10_000
    world.azdo.inject("/distributedtask/", status, count=many, method="GET")  # plan, records
    world.azdo.inject("/feed", status, count=many, method="POST")
    world.azdo.inject("/logs", status, count=many, method="POST")  # create and append
    world.azdo.inject("/records", status, count=many, method="PATCH")  # attach the log
    world.azdo.inject("/pullRequests/", status, count=many, method="POST")  # PR status


@pytest.mark.parametrize("status", [400, 503])
def test_optional_calls_refused_or_failing_never_block_the_completion(repo, status, caplog):
    # GIVEN the storm's gates, and Azure DevOps refusing (400) or failing (503) every optional call
    expected = storm(repo)
    repo.azdo.clear_calls()
    refuse_every_optional_call(repo, status)
    # WHEN the deployments end
    deploy(repo)
    # THEN every gate still completes exactly once, with its result
    assert_each_completed_once(repo, expected)
    # AND the optional calls were tried (and answered with the fault), then given up with a warning
    assert {c.status for c in repo.azdo.calls("POST", "/feed")} == {status}
    assert {c.status for c in repo.azdo.calls("GET", "/plans/")} == {status}
    warnings = [r for r in caplog.records if r.getMessage() == "gate.optional_call_failed"]
    assert {r.status_code for r in warnings} == {status}
    assert {"plan look-up"} <= {r.call for r in warnings}


def one_gate(world) -> tuple[dict, object]:
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    world.deliver_queued()
    world.post(kustomization(A))
    [message] = world.sender.drain()
    return headers, message


def event_posts(world) -> int:
    return len(world.azdo.calls("POST", "/events"))


def test_a_lost_task_completed_answer_costs_at_most_one_more_post(repo):
    # GIVEN a gate whose TaskCompleted reaches Azure DevOps but whose answer is lost
    headers, message = one_gate(repo)
    repo.azdo.inject_lost_response("/events", method="POST")
    with pytest.raises(TransientAzureDevOpsError):
        repo.process(message)
    assert event_posts(repo) == 1
    # WHEN the message is redelivered and the sweep runs
    repo.process(message, delivery_count=2)
    keeper_in(repo, minutes=3).sweep()
    # THEN the job state was read back (completed), and nothing was posted again
    assert event_posts(repo) <= 2
    assert [e["result"] for e in completions(repo, headers)] == ["succeeded"]
    [gate] = GateStore(repo.store).all_gates()
    assert gate.state == GateState.SUCCEEDED


def test_lost_answers_with_an_unreadable_plan_never_cost_more_than_two_posts(repo):
    # GIVEN every TaskCompleted answer lost and the plan look-up refused
    headers, message = one_gate(repo)
    repo.azdo.inject_lost_response("/events", count=100, method="POST")
    repo.azdo.inject("/distributedtask/", 400, count=10_000, method="GET")
    # WHEN the message is delivered again and again, and the sweep runs
    for attempt in (1, 2):  # each POST's answer is lost: redeliver
        with pytest.raises(TransientAzureDevOpsError):
            repo.process(message, delivery_count=attempt)
    for attempt in (3, 4):  # no third POST without the job state: left to the sweep
        repo.process(message, delivery_count=attempt)
    keeper_in(repo, minutes=3).sweep()
    keeper_in(repo, minutes=6).sweep()
    # THEN two POSTs in all, and the gate stays completing, not closed on a guess
    assert event_posts(repo) == 2
    [gate] = GateStore(repo.store).all_gates()
    assert gate.state == GateState.COMPLETING
    # AND once the job state is readable again, the sweep finishes it without another POST
    repo.azdo.clear_faults()
    keeper_in(repo, minutes=9).sweep()
    assert event_posts(repo) == 2
    [gate] = GateStore(repo.store).all_gates()
    assert gate.state == GateState.SUCCEEDED
    assert {e["result"] for e in completions(repo, headers)} == {"succeeded"}


def test_task_completed_refused_closes_the_gate_unsent_with_the_reason_visible(repo, capsys):
    # GIVEN a gate whose TaskCompleted Azure DevOps refuses for good (404)
    _, message = one_gate(repo)
    repo.azdo.inject("/events", 404, method="POST")
    # WHEN its deployment succeeds
    repo.process(message)
    # THEN nothing is completed, the gate is closed, and the reason says why
    assert completions(repo) == []
    [gate] = GateStore(repo.store).all_gates()
    assert gate.state == GateState.SUCCEEDED
    assert "not completed" in gate.result_reason
    assert "404" in gate.result_reason
    assert "Injected 404" in gate.result_reason  # Azure DevOps' own message
    # AND the deployments view and the CLI show the same reason
    [shown] = deployments_view(repo, A)["gates"]
    assert shown["reason"] == gate.result_reason
    [listed] = cli_gates(repo, capsys)
    assert listed["reason"] == gate.result_reason
    # AND later evaluations do not try again
    repo.process(message, delivery_count=2)
    keeper_in(repo, minutes=3).sweep()
    assert event_posts(repo) == 1
