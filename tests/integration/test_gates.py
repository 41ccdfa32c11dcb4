"""Promotion gates end to end: registration, correlation, completion rules, exactly-once."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

import function_app
from connector.app.root.gates import gatekeeper
from connector.devops.client import TransientAzureDevOpsError
from connector.gates.config import GatePolicy
from connector.gates.keeper import GateKeeper
from connector.gates.store import GateStore
from tests.world import REPO, kustomization

pytestmark = pytest.mark.azurite

A = "a" * 40  # parent
B = "b" * 40  # child of A
C = "c" * 40  # unrelated
HOOK_SECRET = "hook-secret-value-42"


@pytest.fixture
def repo(world):
    world.azdo.add_commit(REPO, A, "Merged PR 41: first change")
    world.azdo.add_commit(REPO, B, "Merged PR 42: second change", parents=[A])
    world.azdo.add_commit(REPO, C, "Merge pull request 43 from feature/x into main")
    return world


def plan(world, *, state: str = "inProgress") -> dict[str, str]:
    plan_id, job_id, timeline_id = (str(uuid.uuid4()) for _ in range(3))
    world.azdo.add_plan(
        plan_id, timeline_id=timeline_id, state=state, records={job_id: "inProgress"}
    )
    return {
        "PlanUrl": world.azdo.org_url,
        "ProjectId": str(uuid.uuid4()),
        "HubName": "build",
        "PlanId": plan_id,
        "JobId": job_id,
        "TimelineId": timeline_id,
        "TaskInstanceId": str(uuid.uuid4()),
        "AuthToken": "job-access-token-secret",
    }


def keeper_in(world, *, minutes: int) -> GateKeeper:
    """The app's gatekeeper, with its clock that many minutes ahead (timeouts, stale claims)."""
    c = world.container
    return gatekeeper(
        GatePolicy.from_settings(c.settings),
        GateStore(c.store),
        c.store,
        c.devops,
        c.pull_request_statuses,
        clock=lambda: datetime.now(UTC) + timedelta(minutes=minutes),
    )


def register(world, headers: dict[str, str], **body) -> tuple[int, dict]:
    req = func.HttpRequest(
        method="POST", url="/api/gates", headers=headers, body=json.dumps(body).encode()
    )
    resp = function_app.gates(req)
    return resp.status_code, json.loads(resp.get_body())


def completions(world, headers=None) -> list[dict]:
    events = world.azdo.task_completed_events()
    if headers is None:
        return events
    return [e for e in events if e["jobId"].lower() == headers["JobId"].lower()]


def test_single_cluster_gate_completes_once_after_success(repo):
    world = repo
    headers = plan(world)
    status, reply = register(world, headers, environment="dev", commit=A)
    assert status == 200
    assert reply["state"] == "waiting"
    assert world.deliver_queued() == 1  # the gate check: nothing deployed yet
    assert completions(world) == []
    world.send(kustomization(A, "Progressing", time="2026-05-14T09:12:00Z"))
    assert completions(world) == []
    world.send(kustomization(A, time="2026-05-14T09:12:50Z"))
    world.send(kustomization(A, time="2026-05-14T09:22:50Z"))  # periodic re-send
    [done] = completions(world, headers)
    assert done["result"] == "succeeded"
    assert done["taskId"] == headers["TaskInstanceId"]
    lines = world.azdo.feed_lines(headers["PlanId"], headers["JobId"])
    assert any("dev-1: waiting" in line for line in lines)
    assert any("succeeded" in line for line in lines)
    # The commit status was posted before the task was resumed.
    calls = [c.path for c in world.azdo.calls("POST")]
    last_status = max(i for i, p in enumerate(calls) if p.endswith("/statuses"))
    assert last_status < next(i for i, p in enumerate(calls) if p.endswith("/events"))


def test_fan_in_waits_for_every_cluster(repo):
    world = repo
    world.configure(ENVIRONMENTS='{"prod":{"clusters":["prod-eu","prod-us"]}}')
    headers = plan(world)
    register(world, headers, environment="prod", commit=A)
    world.send(kustomization(A), cluster="prod-eu", env="prod")
    world.send(kustomization(A, name="infra"), cluster="prod-eu", env="prod")
    assert completions(world) == []
    world.send(kustomization(A), cluster="prod-us", env="prod")
    [done] = completions(world, headers)
    assert done["result"] == "succeeded"


def test_gate_clusters_and_objects_override_the_environment(repo):
    world = repo
    headers = plan(world)
    register(
        world,
        headers,
        environment="dev",
        commit=A,
        clusters=["dev-1", "dev-2"],
        objects=["Kustomization/flux-system/apps", "Kustomization/flux-system/infra"],
    )
    world.send(kustomization(A))
    world.send(kustomization(A), cluster="dev-2")
    world.send(kustomization(A, name="infra"))
    assert completions(world) == []
    world.send(kustomization(A, name="infra"), cluster="dev-2")
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]


def test_skip_ahead_a_descendant_deployment_completes_the_older_gate(repo):
    world = repo
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    world.send(kustomization(B))  # Flux went straight to B
    [done] = completions(world, headers)
    assert done["result"] == "succeeded"
    ancestry = world.azdo.calls("GET", "mergebases")
    world.send(kustomization(B, time="2026-05-14T09:30:00Z"))
    assert world.azdo.calls("GET", "mergebases") == ancestry  # asked once, remembered


def test_unrelated_commit_does_not_complete(repo):
    world = repo
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    world.send(kustomization(C))
    assert completions(world) == []


def test_failure_fails_the_gate(repo):
    world = repo
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    world.send(kustomization(A, "HealthCheckFailed", message="health check failed after 5m"))
    [done] = completions(world, headers)
    assert done["result"] == "failed"
    lines = world.azdo.feed_lines(headers["PlanId"], headers["JobId"])
    assert any("HealthCheckFailed" in line for line in lines)


def test_dependency_not_ready_does_not_fail(repo):
    world = repo
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    world.send(
        kustomization(
            A,
            "DependencyNotReady",
            message="Dependencies do not meet ready condition, retrying in 30s",
        )
    )
    assert completions(world) == []
    world.send(kustomization(A, time="2026-05-14T09:13:00Z"))
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]


def test_grace_period_lets_a_failure_recover(repo):
    world = repo
    world.configure(GATE_FAILURE_GRACE_SECONDS="600")
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    now = datetime.now(UTC).replace(microsecond=0)
    world.send(kustomization(A, "HealthCheckFailed", time=now.isoformat()))
    assert completions(world) == []
    world.send(kustomization(A, time=(now + timedelta(seconds=30)).isoformat()))
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]


def test_late_registration_after_the_deployment_succeeded(repo):
    world = repo
    world.send(kustomization(A))
    headers = plan(world)
    status, _ = register(world, headers, environment="dev", commit=A)
    assert status == 200
    assert completions(world) == []  # never before the registration is answered
    [message] = world.sender.drain()
    assert message.scheduled_at is not None
    world.process(message)
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]


def test_registering_the_same_task_twice_is_harmless(repo):
    world = repo
    headers = plan(world)
    first = register(world, headers, environment="dev", commit=A)
    second = register(world, headers, environment="dev", commit=A)
    assert first[1]["gate"] == second[1]["gate"]
    world.deliver_queued()
    world.send(kustomization(A))
    assert len(completions(world, headers)) == 1


def test_duplicate_redelivered_and_concurrent_evaluations_complete_once(repo):
    world = repo
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    world.sender.drain()
    world.post(kustomization(A))
    [message] = world.sender.drain()
    threads = [threading.Thread(target=world.process, args=(message,)) for _ in range(4)]
    keeper = world.container.gatekeeper
    threads += [threading.Thread(target=keeper.sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    world.process(message, delivery_count=2)
    keeper.sweep()
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]


def test_completion_survives_a_transient_failure(repo):
    world = repo
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    world.deliver_queued()
    world.azdo.inject("/events", 503, count=10, method="POST")
    world.post(kustomization(A))
    [message] = world.sender.drain()
    with pytest.raises(TransientAzureDevOpsError):
        world.process(message)
    assert completions(world) == []
    world.azdo.clear_faults()
    world.process(message, delivery_count=2)
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]


def test_a_finished_plan_is_not_completed_again(repo):
    world = repo
    headers = plan(world, state="completed")
    register(world, headers, environment="dev", commit=A)
    world.send(kustomization(A))
    assert completions(world) == []
    gate = world.container.gatekeeper._gates.open_gates("dev")
    assert gate == []


def test_timeout_fails_the_gate_from_the_sweep(repo):
    world = repo
    headers = plan(world)
    register(world, headers, environment="dev", commit=A, timeoutMinutes=1)
    world.deliver_queued()
    later = keeper_in(world, minutes=2)
    later.sweep()
    [done] = completions(world, headers)
    assert done["result"] == "failed"
    assert any(
        "timed out" in line for line in world.azdo.feed_lines(headers["PlanId"], headers["JobId"])
    )


def test_foreign_plan_url_is_refused_and_nothing_is_sent_there(repo):
    world = repo
    headers = {**plan(world), "PlanUrl": "https://dev.azure.com/someone-else/"}
    before = len(world.azdo.calls())
    status, reply = register(world, headers, environment="dev", commit=A)
    assert status == 403
    assert "organisation" in reply["error"]
    assert len(world.azdo.calls()) == before
    assert world.sender.drain() == []


@pytest.mark.parametrize(
    ("drop", "body", "needle"),
    [
        ("PlanId", {"environment": "dev", "commit": A}, "PlanId"),
        ("TimelineId", {"environment": "dev", "commit": A}, "TimelineId"),
        (None, {"commit": A}, "environment"),
        (None, {"environment": "dev"}, "pullRequestId"),
        (None, {"environment": "dev", "commit": "xyz"}, "commit"),
        (None, {"environment": "dev", "commit": A, "timeoutMinutes": 0}, "timeoutMinutes"),
    ],
)
def test_bad_registrations_are_400_naming_the_problem(repo, drop, body, needle):
    world = repo
    headers = plan(world)
    if drop:
        del headers[drop]
    status, reply = register(world, headers, **body)
    assert status == 400
    assert needle in reply["error"] or needle in json.dumps(reply)


def test_pull_request_gate_correlates_by_merge_message(repo):
    world = repo
    merged = datetime(2026, 5, 14, 8, 59, 30, 250000, tzinfo=UTC)  # B is committed at 09:00
    world.azdo.add_pull_request(
        42, REPO, status="completed", last_merge_commit=B, closed_date=merged
    )
    headers = plan(world)
    register(world, headers, environment="dev", pullRequestId=42)
    world.send(kustomization(B))  # "Merged PR 42: second change": a claim, verified
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]


@pytest.mark.parametrize(
    ("status", "merge", "closed"),
    [
        ("active", None, None),  # a message may claim a PR that is still open
        ("abandoned", None, datetime(2026, 5, 14, 8, 0, tzinfo=UTC)),
        ("completed", C, datetime(2026, 5, 14, 8, 0, tzinfo=UTC)),  # merged elsewhere
    ],
)
def test_a_merge_message_claim_that_does_not_hold_completes_nothing(repo, status, merge, closed):
    world = repo
    world.azdo.add_pull_request(
        42, REPO, status=status, last_merge_commit=merge, closed_date=closed
    )
    headers = plan(world)
    register(world, headers, environment="dev", pullRequestId=42)
    world.deliver_queued()
    world.send(kustomization(B))  # "Merged PR 42: second change"
    # An abandoned PR fails its gate (the check reads it); nothing here may succeed.
    results = [e["result"] for e in completions(world, headers)]
    assert results == (["failed"] if status == "abandoned" else [])


def test_pull_request_gate_correlates_by_pullrequestquery(repo):
    world = repo
    world.azdo.add_pull_request(77, REPO, status="completed", last_merge_commit=C)
    headers = plan(world)
    register(world, headers, environment="dev", pullRequestId=77)
    world.send(kustomization(C))
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]
    assert world.azdo.pull_request_statuses(77)[-1]["state"] == "succeeded"


def test_abandoned_pr_fails_its_gate_through_the_service_hook(repo):
    world = repo
    world.configure(AZDO_HOOK_SECRET=HOOK_SECRET)
    world.azdo.add_pull_request(55, REPO, status="active")
    headers = plan(world)
    register(world, headers, environment="dev", pullRequestId=55)
    event = {
        "eventType": "git.pullrequest.updated",
        "resource": {
            "pullRequestId": 55,
            "status": "abandoned",
            "repository": {"id": "x", "name": REPO},
        },
    }

    def hook(password: str) -> func.HttpResponse:
        auth = base64.b64encode(f"azdo:{password}".encode()).decode()
        req = func.HttpRequest(
            method="POST",
            url="/api/devops/events",
            headers={"Authorization": f"Basic {auth}"},
            body=json.dumps(event).encode(),
        )
        return function_app.devops_events(req)

    assert hook("wrong").status_code == 401
    assert completions(world) == []
    world.azdo.pull_requests[55].status = "abandoned"
    resp = hook(HOOK_SECRET)
    assert resp.status_code == 200
    assert json.loads(resp.get_body())["gatesFailed"] == 1
    [done] = completions(world, headers)
    assert done["result"] == "failed"


def test_sweep_catches_an_abandonment_the_hook_missed(repo):
    world = repo
    world.azdo.add_pull_request(56, REPO, status="abandoned", closed_date=datetime.now(UTC))
    headers = plan(world)
    register(world, headers, environment="dev", pullRequestId=56)
    world.container.gatekeeper.sweep()
    assert [e["result"] for e in completions(world, headers)] == ["failed"]


def test_existing_connector_pr_property_gate_is_picked_up(repo):
    world = repo
    world.configure(LEGACY_CALLBACK_ENVIRONMENT="dev")
    headers = plan(world)
    prop = {
        "taskid": headers["TaskInstanceId"],
        "jobid": headers["JobId"],
        "planurl": world.azdo.org_url,
        "planid": headers["PlanId"],
        "projectid": str(uuid.uuid4()),  # a project id (System.TeamProjectId) is a UUID
        "environment": "dev",
    }
    world.azdo.add_pull_request(
        42,
        REPO,
        status="completed",
        last_merge_commit=B,
        properties={"callback-task-id": json.dumps(prop)},
    )
    world.send(kustomization(B))
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]


def test_pr_properties_are_not_read_unless_opted_in_and_foreign_urls_never_called(repo):
    world = repo
    headers = plan(world)
    foreign = {
        "taskid": "t",
        "jobid": "j",
        "planurl": "https://evil.example/",
        "planid": "p",
        "projectid": "x",
        "environment": "dev",
    }
    no_env = {
        "taskid": headers["TaskInstanceId"],
        "jobid": headers["JobId"],
        "planurl": world.azdo.org_url,
        "planid": headers["PlanId"],
        "projectid": "x",
    }
    world.azdo.add_pull_request(
        42,
        REPO,
        status="completed",
        last_merge_commit=B,
        properties={"callback-task-id": json.dumps(no_env)},
    )
    world.azdo.add_pull_request(
        41,
        REPO,
        status="completed",
        last_merge_commit=A,
        properties={"callback-task-id": json.dumps(foreign)},
    )
    world.send(kustomization(A))
    world.send(kustomization(B, time="2026-05-14T09:20:00Z"))
    assert completions(world) == []
    assert world.container.gatekeeper._gates.all_gates() == []
    assert world.azdo.calls(path_contains="/properties") == []  # LEGACY_CALLBACK_ENVIRONMENT unset
    # Opted in, the foreign plan URL is still never used.
    world.configure(LEGACY_CALLBACK_ENVIRONMENT="dev")
    world.send(kustomization(A, time="2026-05-14T09:30:00Z", name="infra"))
    assert [c.path for c in world.azdo.calls(path_contains="/properties")] != []
    assert completions(world) == []
    assert world.container.gatekeeper._gates.all_gates() == []


def test_job_token_is_not_stored_by_default(repo):
    world = repo
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    [gate] = world.container.gatekeeper._gates.all_gates()
    assert gate.auth_token == ""
    entity = world.store.table("gates").get_entity(gate.environment, gate.id)
    assert headers["AuthToken"] not in json.dumps(dict(entity), default=str)


def test_job_token_completes_the_gate_when_asked_for(repo):
    world = repo
    world.configure(GATE_USE_JOB_TOKEN="true")
    headers = plan(world)
    world.azdo.expected_bearer = headers["AuthToken"]
    register(world, headers, environment="dev", commit=A)
    world.send(kustomization(A))
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]
    [event_call] = world.azdo.calls("POST", "/events")
    assert event_call.auth == "bearer"  # the job's own token, not our PAT
    assert all(c.auth == "basic" for c in world.azdo.calls(path_contains="/statuses"))


def test_a_rerun_of_a_finished_job_waits_again(repo):
    world = repo
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    world.send(kustomization(A))
    assert len(completions(world, headers)) == 1
    # The same job runs again (re-run attempt): the plan is in progress, the job waits again.
    world.azdo.plans[headers["PlanId"].lower()].records[
        headers["JobId"].lower()
    ].state = "inProgress"
    # It registers with the same body (its job's binding); another body would be a 409.
    status, reply = register(world, headers, environment="dev", commit=A)
    assert status == 200
    assert reply["state"] == "waiting"
    assert register(world, headers, environment="dev", commit=B)[0] == 409
    world.deliver_queued()  # the check: A is healthy in dev
    assert [e["result"] for e in completions(world, headers)] == ["succeeded", "succeeded"]


def test_missing_permission_is_retried_once_granted(repo):
    world = repo
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    world.deliver_queued()
    world.azdo.inject("/events", 403, count=1, method="POST")
    world.send(kustomization(A))  # completion refused: the identity lacks the permission
    assert completions(world) == []
    [gate] = world.container.gatekeeper._gates.open_gates("dev")
    assert gate.state.value == "completing"
    # The permission is granted; the sweep retries once the claim is old enough.
    later = keeper_in(world, minutes=3)
    later.sweep()
    later.sweep()
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]


def test_a_failure_within_its_grace_queues_a_check_for_when_the_grace_ends(repo):
    # Re-sends of the failure are settled and evaluate nothing: the gate asks to be looked at
    # again when the grace runs out, instead of waiting for the sweep.
    world = repo
    world.configure(GATE_FAILURE_GRACE_SECONDS="600")
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    world.deliver_queued()
    before = datetime.now(UTC)
    world.send(kustomization(A, "HealthCheckFailed", time=before.isoformat()))
    assert completions(world) == []
    [check] = [m for m in world.sender.drain() if m.message_id.startswith("gate-check/")]
    assert check.scheduled_at is not None
    assert timedelta(seconds=599) <= check.scheduled_at - before <= timedelta(seconds=660)
    # WHEN the check arrives after the grace THEN the gate fails with the failure's reason
    gate = json.loads(check.body)
    keeper_in(world, minutes=11).check(gate["env"], gate["gate"])
    [done] = completions(world, headers)
    assert done["result"] == "failed"
