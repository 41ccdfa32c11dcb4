"""Gates under stale hooks, backlogs, bad rows, partial outages, races, long Retry-After and
echoed credentials (#12), one test each, against Azurite and the loopback Azure DevOps."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest
from azure.core.pipeline.transport import RequestsTransport

import function_app
from connector.core.gates import GateState
from connector.devops.client import (
    AzureDevOpsClient,
    CommitStatus,
    PermanentAzureDevOpsError,
    TransientAzureDevOpsError,
)
from connector.devops.policies import JobToken
from connector.gates.store import GateStore
from tests.integration.test_gates import HOOK_SECRET, A, completions, keeper_in, plan, register
from tests.world import PAT, PROJECT, REPO, kustomization

pytestmark = pytest.mark.azurite


@pytest.fixture
def repo(world):
    world.azdo.add_commit(REPO, A, "Merged PR 41: first change")
    return world


def abandoned_hook(world, pr: int) -> func.HttpResponse:
    event = {
        "eventType": "git.pullrequest.updated",
        "resource": {"pullRequestId": pr, "status": "abandoned", "repository": {"name": REPO}},
    }
    auth = base64.b64encode(f"azdo:{HOOK_SECRET}".encode()).decode()
    req = func.HttpRequest(
        method="POST",
        url="/api/devops/events",
        headers={"Authorization": f"Basic {auth}"},
        body=json.dumps(event).encode(),
    )
    return function_app.devops_events(req)


def test_a_late_abandoned_hook_for_a_merged_pr_leaves_its_gate_alone(repo):
    # GIVEN a gate on PR 41, which Azure DevOps says is completed (merged)
    world = repo
    world.configure(AZDO_HOOK_SECRET=HOOK_SECRET)
    merged = datetime.now(UTC) - timedelta(minutes=1)
    world.azdo.add_pull_request(41, REPO, status="completed", last_merge_commit=A)
    world.azdo.pull_requests[41].closed_date = merged
    headers = plan(world)
    register(world, headers, environment="dev", pullRequestId=41)
    world.deliver_queued()
    # WHEN a replayed "abandoned" hook arrives, and the sweep runs
    resp = abandoned_hook(world, 41)
    world.container.gatekeeper.sweep()
    # THEN the PR was read, and nothing failed
    assert resp.status_code == 200
    assert json.loads(resp.get_body()).get("gatesFailed", 0) == 0
    assert world.azdo.calls("GET", "/pullrequests/41")
    assert completions(world) == []
    [gate] = GateStore(world.store).all_gates()
    assert gate.state == GateState.WAITING
    # AND the merge commit's deployment still completes it
    world.send(kustomization(A))
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]


def test_a_backlog_does_not_eat_the_failure_grace(repo):
    # GIVEN a 120 s grace, and a failure and its recovery that happened 200 s and 170 s ago
    world = repo
    world.configure(GATE_FAILURE_GRACE_SECONDS="120")
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    world.deliver_queued()
    now = datetime.now(UTC).replace(microsecond=0)
    failed = kustomization(A, "HealthCheckFailed", time=(now - timedelta(seconds=200)).isoformat())
    recovered = kustomization(A, time=(now - timedelta(seconds=170)).isoformat())
    # WHEN both are queued and then processed in order
    assert world.post(failed) == 202
    assert world.post(recovered) == 202
    first, second = world.sender.drain()
    world.process(first)
    assert completions(world) == []  # the grace counts from when we learned of the failure
    world.process(second)
    # THEN the gate succeeds
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]


def test_a_malformed_gate_row_stops_nothing(repo, caplog):
    # GIVEN a healthy gate, and a gate row that cannot be read (written straight to the table)
    world = repo
    headers = plan(world)
    register(world, headers, environment="dev", commit=A)
    world.deliver_queued()
    table = world.store.table("gates")
    good = dict(table.get_entity("dev", GateStore(world.store).all_gates()[0].id))
    bad = {**good, "RowKey": "0" * 64, "objects": "not json", "deadline": "someday"}
    bad.pop("state", None)
    table.upsert_entity(bad)
    # WHEN an event arrives and the sweep runs
    world.send(kustomization(A))
    world.container.gatekeeper.sweep()
    keeper_in(world, minutes=120).sweep()
    # THEN the healthy gate completed, once, and nothing raised
    assert [e["result"] for e in completions(world, headers)] == ["succeeded"]


def test_one_failing_gate_does_not_stop_the_sweep_timing_out_another(repo):
    # GIVEN two gates past their deadline, one of whose plan answers 500 to every call
    world = repo
    broken, other = plan(world), plan(world)
    register(world, broken, environment="dev", commit=A, timeoutMinutes=1)
    register(world, other, environment="dev", commit=A, timeoutMinutes=1)
    world.deliver_queued()
    world.azdo.inject(broken["PlanId"], 500, count=10_000)
    # WHEN the sweep runs past the deadline
    keeper_in(world, minutes=2).sweep()
    # THEN the other gate is timed out (failed) nonetheless
    assert [e["result"] for e in completions(world, other)] == ["failed"]
    assert completions(world, broken) == []


def test_environment_statuses_are_ordered_when_a_final_event_lands_mid_post(repo):
    # GIVEN prod on two clusters; prod-2 has deployed, prod-1 is about to
    world = repo
    world.configure(ENVIRONMENTS='{"prod":{"clusters":["prod-1","prod-2"]}}')
    client = world.container.devops
    real_post = client.post_commit_status
    nested: list[str] = []

    def post_commit_status(repository, commit, status):
        # While prod-1's "deploying" roll-up is being posted, prod-2's final event is processed.
        if status.name == "env/prod" and status.state == "pending" and not nested:
            nested.append(status.description)
            world.post(kustomization(A), cluster="prod-2", env="prod")
            world.deliver_queued()
        real_post(repository, commit, status)

    client.post_commit_status = post_commit_status
    # WHEN prod-1 reports progress (its roll-up: deploying)
    world.post(kustomization(A, "Progressing"), cluster="prod-1", env="prod")
    world.deliver_queued()
    world.send(kustomization(A), cluster="prod-1", env="prod")
    # THEN the interleaving happened, and the last environment status is succeeded
    assert nested == ["deploying"]
    env_states = [
        s["state"]
        for s in world.azdo.commit_statuses(REPO, A)
        if s["context"]["name"] == "env/prod"
    ]
    assert env_states[-1] == "succeeded"


class CountingTransport(RequestsTransport):
    """A real HTTP transport whose sleeps are recorded, not slept (attempts are counted by the
    fake); no test waits for a Retry-After."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    def sleep(self, duration: float) -> None:
        self.sleeps.append(duration)


def test_retry_after_on_every_attempt_stops_within_the_budget_for_redelivery(repo):
    # GIVEN a client with production retry settings and statuses throttled with Retry-After 20
    world = repo
    transport = CountingTransport()
    world.container.__dict__["devops"] = AzureDevOpsClient(
        world.azdo.org_url, PROJECT, pat=PAT, transport=transport
    )
    world.azdo.inject("/statuses", 429, count=100, retry_after="20", method="POST")
    world.post(kustomization(A))
    [message] = world.sender.drain()
    # WHEN the queue function processes the event
    with pytest.raises(TransientAzureDevOpsError, match="budget"):
        world.process(message)
    # THEN it waited 20 s once (of its 30 s budget), then gave the message back: two attempts
    assert transport.sleeps == [20.0]
    assert len(world.azdo.status_writes()) == 2


SECRET_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjb25uZWN0b3IifQ.c2lnbmF0dXJlLXZhbHVl"


@pytest.mark.parametrize("form", ["pat", "base64", "job token", "bearer jwt"])
def test_every_credential_form_echoed_in_an_error_is_redacted(repo, caplog, form):
    # GIVEN Azure DevOps echoing a credential in its error message
    world = repo
    job_token = "job-token-secret-value-0123456789"
    echoed = {
        "pat": PAT,
        "base64": base64.b64encode(f":{PAT}".encode()).decode(),
        "job token": job_token,
        "bearer jwt": f"Bearer {SECRET_JWT}",
    }[form]
    world.azdo.expected_bearer = job_token
    fake = world.azdo

    original = fake._fault_response

    def echo(fault):
        response = original(fault)
        response.body["message"] = f"TF400813: token {echoed} is not authorized"
        return response

    fake._fault_response = echo
    fake.inject("/statuses", 400, method="POST")
    credential = {"credential": JobToken(job_token)} if form == "job token" else {"pat": PAT}
    client = AzureDevOpsClient(fake.org_url, PROJECT, retry_total=0, **credential)

    status = CommitStatus(state="pending", description="d", genre="flux", name="dev")
    # WHEN the call fails
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermanentAzureDevOpsError) as raised:
        client.post_commit_status(REPO, A, status)
    # THEN neither the exception nor any log line carries the credential
    secret = SECRET_JWT if form == "bearer jwt" else echoed
    assert "TF400813" in str(raised.value)
    assert secret not in str(raised.value)
    assert secret not in caplog.text
    assert job_token not in caplog.text
    assert PAT not in caplog.text
