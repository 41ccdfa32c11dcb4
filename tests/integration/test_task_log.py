"""The task's stored log (#11.3): what the gate tells its task stays readable after the run, in
the log Azure DevOps shows for the task (created as `logs\\{TaskInstanceId}`, attached to the
task's timeline record). Read back from the loopback Azure DevOps."""

from __future__ import annotations

import re

import pytest

from tests.integration.test_gates import A, B, plan, register
from tests.world import REPO, kustomization

pytestmark = pytest.mark.azurite

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")


@pytest.fixture
def prod(world):
    world.azdo.add_commit(REPO, A, "Merged PR 41: first change")
    world.configure(ENVIRONMENTS='{"prod":{"clusters":["prod-eu","prod-us"]}}')
    return world


def stored_log(world, headers) -> list[str]:
    """The task's log lines without their timestamps (every line must carry one)."""
    lines = world.azdo.task_log(headers["PlanId"], headers["TaskInstanceId"])
    assert all(STAMP.match(line) for line in lines), lines
    return [STAMP.sub("", line) for line in lines]


def run_rollout(world, *, redeliver: bool, fail: bool = False, commit: str = A) -> dict[str, str]:
    headers = plan(world)
    assert register(world, headers, environment="prod", commit=commit)[0] == 200
    world.deliver_queued(redeliver=redeliver)
    for cluster in ("prod-eu", "prod-us"):
        world.post(
            kustomization(commit, "Progressing", time="2026-05-14T09:12:00Z"),
            cluster=cluster,
            env="prod",
        )
        world.deliver_queued(redeliver=redeliver)
    world.post(kustomization(commit), cluster="prod-eu", env="prod")
    world.deliver_queued(redeliver=redeliver)
    last = (
        kustomization(commit, "HealthCheckFailed", message="health check failed after 5m")
        if fail
        else kustomization(commit)
    )
    world.post(last, cluster="prod-us", env="prod")
    world.deliver_queued(redeliver=redeliver)
    return headers


def test_the_stored_log_tells_the_whole_story_once_attached_to_the_task(prod):
    # GIVEN a gate on two clusters WHEN both roll out and succeed
    headers = run_rollout(prod, redeliver=False)
    log = stored_log(prod, headers)
    # THEN the log opens with the registration
    assert log[0].startswith(f"prod: waiting for {A[:8]} in prod (registered ")
    assert "deadline" in log[0]
    # AND tells each cluster's progress
    assert any(line.startswith("prod: prod-eu: healthy on") for line in log)
    assert "prod: prod-us: waiting for Kustomization/flux-system/apps" in log
    # (each line once: a cluster's unchanged line is not repeated by the next change)
    assert len(log) == len(set(log))
    # AND ends with the decision and why
    assert log[-1] == f"prod: succeeded: prod healthy on {A[:8]} in prod-eu, prod-us"
    # AND no line is written twice in a row for one change, the opening and decision once
    assert len({line for line in log if "succeeded:" in line}) == 1
    assert sum(line.startswith("prod: waiting for") for line in log) == 1
    # AND it is the task's own log (`logs\{TaskInstanceId}`), the only one created
    [create] = prod.azdo.calls("POST", "/logs")[:1]
    assert create.json == {"path": f"logs\\{headers['TaskInstanceId']}"}
    creates = [c for c in prod.azdo.calls("POST", "/logs") if c.path.rstrip("/").endswith("/logs")]
    assert len(creates) == 1
    plan_state = prod.azdo.plans[headers["PlanId"].lower()]
    [stored] = plan_state.logs.values()
    assert plan_state.records[headers["TaskInstanceId"].lower()].log_id == stored.id
    # AND the live feed carried the same story
    feed = prod.azdo.feed_lines(headers["PlanId"], headers["JobId"])
    assert any("succeeded" in line for line in feed)


def test_the_failure_reason_is_in_the_stored_log(prod):
    headers = run_rollout(prod, redeliver=False, fail=True)
    log = stored_log(prod, headers)
    assert log[-1].startswith("prod: failed: ")
    assert "HealthCheckFailed" in log[-1]


def test_redelivering_every_message_never_duplicates_a_line(world):
    # GIVEN two rollouts of sibling commits: one delivered once, one with every message twice
    world.azdo.add_commit(REPO, A, "Merged PR 41: first change")
    world.azdo.add_commit(REPO, B, "Merged PR 42: second change")
    world.configure(ENVIRONMENTS='{"prod":{"clusters":["prod-eu","prod-us"]}}')
    once = stored_log(world, run_rollout(world, redeliver=False))
    world.azdo.clear_calls()
    twice_headers = run_rollout(world, redeliver=True, commit=B)
    # THEN the logs say the same, line for line, and there is one log per task
    twice = [line.replace(B[:8], A[:8]) for line in stored_log(world, twice_headers)]
    assert twice == once
    assert len(once) >= 4
    creates = [c for c in world.azdo.calls("POST", "/logs") if c.path.rstrip("/").endswith("/logs")]
    assert len(creates) == 1
    assert len(world.azdo.plans[twice_headers["PlanId"].lower()].logs) == 1
