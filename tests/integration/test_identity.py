"""A cluster speaks only for itself (docs/security.md): each attack of issue 23, tried as an
attacker would on the loopback Azure DevOps and Azurite, and the legitimate paths next to it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import azure.functions as func
import pytest

import function_app
from connector.core.gates import Gate, PlanRef
from connector.gates.rechecks import GateChecks
from tests.argocd import application, argocd_request, bearer
from tests.conftest import flux_request
from tests.flux_encoding import go_json
from tests.integration.test_gates import plan
from tests.recording_sender import RecordingSender
from tests.world import REPO, kustomization

pytestmark = pytest.mark.azurite

A = "a" * 40  # parent
B = "b" * 40  # child of A
D = "d" * 40  # a dev commit whose message names a PR it did not merge
DEV_KEY = b"dev-1-key-0123456789abcdef"
PROD_KEY = b"prod-eu-key-0123456789abcdef"
PROD_NEXT = b"prod-eu-next-key-0123456789"
EDGE_KEY = b"edge-1-key-0123456789abcdef"
ENVIRONMENTS = json.dumps({"dev": {"clusters": ["dev-1"]}, "prod": {"clusters": ["prod-eu"]}})
KEYS = json.dumps(
    {
        "dev-1": DEV_KEY.decode(),
        "prod-eu": [PROD_KEY.decode(), PROD_NEXT.decode()],
        "edge-1": EDGE_KEY.decode(),
    }
)
ARGO_DEV = "argocd-dev-secret-0123456789"
ARGO_PROD = "argocd-prod-secret-0123456789"
INSTANCES = json.dumps(
    {
        "argocd-dev": {"secrets": [ARGO_DEV], "clusters": ["dev-1"]},
        "argocd-prod": {"secrets": ARGO_PROD, "clusters": ["prod-eu"]},
    }
)

FLEET = {
    "FLUX_HMAC_KEY": "",
    "FLUX_CLUSTER_KEYS": KEYS,
    "ENVIRONMENTS": ENVIRONMENTS,
    "DEFAULT_CLUSTER": "",
    "DEFAULT_ENV": "",
    "ARGOCD_INSTANCES": INSTANCES,
}


@pytest.fixture
def fleet(world):
    """Per-cluster keys only (no shared key), dev and prod environments, commits A ← B, D."""
    world.azdo.add_commit(REPO, A, "Merged PR 41: first change")
    world.azdo.add_commit(REPO, B, "Merged PR 42: second change", parents=[A])
    world.azdo.add_commit(REPO, D, "Merged PR 77: not really", parents=[A])
    world.configure(**FLEET)
    return world


@pytest.fixture
def gated(world):
    """The same repository and environments with the shared key of older installs: the gate
    defences do not depend on the keys (and these attacks ran like this before them)."""
    world.azdo.add_commit(REPO, A, "Merged PR 41: first change")
    world.azdo.add_commit(REPO, B, "Merged PR 42: second change", parents=[A])
    world.azdo.add_commit(REPO, D, "Merged PR 77: not really", parents=[A])
    world.configure(ENVIRONMENTS=ENVIRONMENTS)
    return world


def post(event: dict, key: bytes, **params: str) -> tuple[int, dict]:
    resp = function_app.flux(flux_request(go_json(event), key=key, params=params))
    return resp.status_code, json.loads(resp.get_body())


def prod_event(applied: str = A, *, name: str = "apps", **metadata: str) -> dict:
    meta = {"cluster": "prod-eu", "env": "prod", **metadata}
    return kustomization(applied, name=name, metadata=meta)


def register(headers: dict[str, str], body: dict | bytes) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = func.HttpRequest(method="POST", url="/api/gates", headers=headers, body=raw)
    resp = function_app.gates(req)
    return resp.status_code, json.loads(resp.get_body())


def results(world, headers: dict[str, str]) -> list[str]:
    job = headers["JobId"].lower()
    return [e["result"] for e in world.azdo.task_completed_events() if e["jobId"].lower() == job]


def prod_gate(world, commit: str = A) -> dict[str, str]:
    headers = plan(world)
    assert register(headers, {"environment": "prod", "commit": commit})[0] == 200
    world.deliver_queued()
    return headers


# --- 1. one key for the fleet ------------------------------------------------------------------


def test_the_dev_key_cannot_speak_for_prod(fleet):
    headers = prod_gate(fleet)
    status, reply = post(prod_event(), DEV_KEY)
    assert status == 403
    assert "'prod-eu'" in reply["error"]
    assert "dev-1" in reply["error"]
    # Nor for its own cluster in the prod environment: dev-1 is listed in dev only.
    status, reply = post(kustomization(A, metadata={"cluster": "dev-1", "env": "prod"}), DEV_KEY)
    assert status == 403
    assert "reports only for env dev" in reply["error"]
    assert fleet.sender.messages == []
    assert results(fleet, headers) == []


def test_a_real_prod_cluster_with_its_own_key_completes_the_prod_gate(fleet):
    headers = prod_gate(fleet)
    assert post(prod_event(), PROD_KEY)[0] == 202
    fleet.deliver_queued()
    assert results(fleet, headers) == ["succeeded"]


def test_rotation_two_keys_of_one_cluster_are_both_its_own(fleet):
    headers = prod_gate(fleet)
    assert post(prod_event(name="infra"), PROD_NEXT, cluster="prod-eu")[0] == 202
    assert post(prod_event(), PROD_KEY)[0] == 202
    assert {m.application_properties["cluster"] for m in fleet.sender.messages} == {"prod-eu"}
    fleet.deliver_queued()
    assert results(fleet, headers) == ["succeeded"]


def test_an_unknown_key_is_401(fleet):
    status, reply = post(prod_event(), b"someone-elses-key-0123456789")
    assert (status, reply["error"]) == (401, "unauthorized: X-Signature does not match the body")
    assert fleet.sender.messages == []


def test_the_key_decides_the_cluster_when_the_event_names_none(fleet):
    status, _ = post(kustomization(A), DEV_KEY)  # no metadata, no query: dev-1's own key
    assert status == 202
    [message] = fleet.sender.messages
    props = message.application_properties
    assert (props["cluster"], props["env"]) == ("dev-1", "dev")


def test_with_the_shared_key_too_a_listed_cluster_reports_only_for_its_environment(gated):
    headers = prod_gate(gated)
    status = gated.post(kustomization(A), cluster="dev-1", env="prod")
    assert status == 403
    gated.deliver_queued()
    assert results(gated, headers) == []


# --- 2. unsigned overrides ---------------------------------------------------------------------


def test_a_captured_dev_body_re_posted_with_a_prod_query_is_403(fleet):
    headers = prod_gate(fleet)
    dev_body = kustomization(A)  # the Alert set cluster and env in the webhook address
    assert post(dev_body, DEV_KEY, cluster="dev-1", env="dev")[0] == 202
    status, reply = post(dev_body, DEV_KEY, cluster="prod-eu", env="prod")
    assert status == 403
    assert "'prod-eu'" in reply["error"]
    # env alone cannot move it either: dev-1 reports for dev only.
    assert post(dev_body, DEV_KEY, env="prod")[0] == 403
    assert len(fleet.sender.messages) == 1
    fleet.deliver_queued()
    assert results(fleet, headers) == []


def test_an_unlisted_cluster_takes_its_environment_only_from_the_signed_event(fleet):
    assert post(kustomization(A), EDGE_KEY, env="prod")[0] == 403  # ?env= is not signed
    assert post(kustomization(A, metadata={"env": "edge"}), EDGE_KEY, env="edge")[0] == 202
    [message] = fleet.sender.messages
    assert message.application_properties["env"] == "edge"


def test_argocd_an_instance_speaks_only_for_its_clusters(fleet):
    headers = prod_gate(fleet)
    app = application("deployed-kustomize")
    # Its labels and destination name aks-dev-1, a cluster neither instance is bound to.
    resp = function_app.argocd(argocd_request(app, headers=bearer(ARGO_DEV)))
    assert resp.status_code == 403
    del app["spec"]["destination"]["name"]
    del app["metadata"]["labels"]

    def argo(secret: str, **params: str) -> tuple[int, dict]:
        req = argocd_request(app, headers=bearer(secret), params=params)
        resp = function_app.argocd(req)
        return resp.status_code, json.loads(resp.get_body())

    status, reply = argo(ARGO_DEV, cluster="prod-eu", env="prod")
    assert status == 403
    assert "'argocd-dev'" in reply["error"]
    assert "'prod-eu'" in reply["error"]
    labelled = json.loads(json.dumps(app))
    labelled["metadata"]["labels"] = {"gitops-connector/cluster": "prod-eu"}
    resp = function_app.argocd(argocd_request(labelled, headers=bearer(ARGO_DEV)))
    assert resp.status_code == 403
    assert argo(ARGO_DEV, env="prod")[0] == 403  # dev-1 reports for dev only
    assert fleet.sender.messages == []
    assert argo(ARGO_DEV)[0] == 202  # one cluster: the instance needs no name for it
    assert argo(ARGO_PROD)[0] == 202
    clusters = [m.application_properties["cluster"] for m in fleet.sender.messages]
    assert clusters == ["dev-1", "prod-eu"]
    assert results(fleet, headers) == []


# --- 3. a hidden PR property -------------------------------------------------------------------


def property_naming(world, headers: dict[str, str], environment: str = "prod") -> dict:
    prop = {
        "taskid": headers["TaskInstanceId"],
        "jobid": headers["JobId"],
        "planurl": world.azdo.org_url,
        "planid": headers["PlanId"],
        "projectid": headers["ProjectId"],
        "environment": environment,
    }
    return {"callback-task-id": json.dumps(prop)}


def dev_deploys(world, commit: str, *, time: str = "2026-05-14T09:12:50Z") -> None:
    world.send(kustomization(commit, time=time), cluster="dev-1", env="dev")


def prod_deploys(world, event: dict) -> None:
    world.send(event, cluster="prod-eu", env="prod")


def test_a_draft_pr_property_does_not_release_a_waiting_prod_job(gated):
    headers = plan(gated)  # a prod job waiting through its own mechanism (no registration)
    props = property_naming(gated, headers, environment="dev")  # the property picks dev
    gated.azdo.add_pull_request(77, REPO, status="active", properties=props)
    dev_deploys(gated, D)  # "Merged PR 77:" in a healthy dev commit's message
    assert results(gated, headers) == []
    assert gated.azdo.calls(path_contains="/properties") == []  # not opted in: never read
    # Opted in, a PR that is not completed is still no callback.
    gated.configure(LEGACY_CALLBACK_ENVIRONMENT="dev")
    dev_deploys(gated, D, time="2026-05-14T10:00:00Z")
    assert results(gated, headers) == []
    assert gated.container.gatekeeper._gates.all_gates() == []


def test_a_completed_pr_counts_only_when_its_merge_commit_is_deployed(gated):
    gated.configure(LEGACY_CALLBACK_ENVIRONMENT="dev")
    headers = plan(gated)
    # Completed, but merged as B: D (a sibling of B) names it in its message, and does not
    # contain it. The property names prod; the configured environment, dev, is the one used.
    props = property_naming(gated, headers, environment="prod")
    gated.azdo.add_pull_request(77, REPO, status="completed", last_merge_commit=B, properties=props)
    dev_deploys(gated, D)
    assert results(gated, headers) == []
    # When its merge commit deploys, the callback counts for the configured environment only.
    gated.azdo.add_commit(REPO, "e" * 40, "Merged PR 77: the real merge", parents=[B])
    dev_deploys(gated, "e" * 40, time="2026-05-14T10:00:00Z")
    assert results(gated, headers) == ["succeeded"]
    [gate] = gated.container.gatekeeper._gates.all_gates()
    assert (gate.environment, gate.commit, gate.source) == ("dev", B, "pr-property")


def test_a_pr_property_cannot_take_a_job_registered_for_another_environment(gated):
    gated.configure(LEGACY_CALLBACK_ENVIRONMENT="dev")
    headers = prod_gate(gated, B)
    props = property_naming(gated, headers, environment="dev")
    gated.azdo.add_pull_request(42, REPO, status="completed", last_merge_commit=B, properties=props)
    dev_deploys(gated, B)
    assert results(gated, headers) == []
    assert [g.environment for g in gated.container.gatekeeper._gates.all_gates()] == ["prod"]


# --- 4. re-registration ------------------------------------------------------------------------


def test_a_waiting_prod_job_cannot_be_registered_again_under_dev(gated):
    dev_deploys(gated, A)  # A already healthy in dev
    headers = prod_gate(gated)
    status, reply = register(headers, {"environment": "dev", "commit": A})
    assert status == 409
    assert "environment" in reply["error"]
    gated.deliver_queued()
    assert results(gated, headers) == []
    # The task's retry with its own body is the same registration.
    assert register(headers, {"environment": "prod", "commit": A})[0] == 200
    assert register(headers, {"environment": "prod", "pullRequestId": 42})[0] == 409
    assert register(headers, {"environment": "prod", "commit": A, "clusters": ["x"]})[0] == 409


def test_a_gate_repository_must_be_one_of_the_connector(gated):
    headers = plan(gated)
    body = {"environment": "dev", "pullRequestId": 7, "repository": "other-team"}
    status, reply = register(headers, body)
    assert status == 400
    assert reply["fields"] == [{"field": "repository", "problem": "not configured"}]
    assert gated.container.gatekeeper._gates.all_gates() == []
    status, _ = register(headers, {**body, "repository": REPO.upper()})
    assert status == 200
    [gate] = gated.container.gatekeeper._gates.all_gates()
    assert gate.repository == REPO


def test_each_gate_check_has_its_own_message_id():
    sender = RecordingSender()
    checks = GateChecks(sender)
    at = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
    plan_ref = PlanRef("https://dev.azure.com/o/", "p", "build", "plan", "job", "tl", "task")
    for env in ("prod", "dev"):  # the same job id in two environments, the same second
        assert checks.queue(Gate("g1", plan_ref, env, at, at), at, "registered/1")
    assert checks.queue(Gate("g2", plan_ref, "prod", at, at), at, "registered/1")
    ids = [m.message_id for m in sender.messages]
    assert len(set(ids)) == 3
    assert all(len(i) <= 128 for i in ids)  # Service Bus' limit of a message id


# --- 5. annotations do not beat the controller -------------------------------------------------


def test_a_commit_annotation_does_not_release_the_gate_of_another_commit(gated):
    headers = prod_gate(gated, B)
    # The Kustomization applied A; an annotation event.toolkit.fluxcd.io/commit names B.
    prod_deploys(gated, prod_event(A, commit=B))
    assert results(gated, headers) == []
    prod_deploys(gated, prod_event(B))
    assert results(gated, headers) == ["succeeded"]


# --- 6. no silent downgrades -------------------------------------------------------------------


@pytest.mark.parametrize("field", ["pullRequestId", "timeoutMinutes"])
def test_booleans_are_not_numbers_in_gate_registrations(gated, field):
    body = {"environment": "dev", "commit": A, field: True}
    if field == "pullRequestId":
        body = {"environment": "dev", field: True}
    status, reply = register(plan(gated), body)
    assert status == 400
    assert reply["fields"][0]["field"] == field
    assert gated.container.gatekeeper._gates.all_gates() == []


def test_booleans_are_not_pull_request_ids_in_the_service_hook(gated):
    import base64

    gated.configure(AZDO_HOOK_SECRET="hook-secret-value-42")
    headers = plan(gated)
    assert register(headers, {"environment": "dev", "pullRequestId": 1})[0] == 200
    token = base64.b64encode(b"x:hook-secret-value-42").decode()
    event = {
        "eventType": "git.pullrequest.updated",
        "resource": {"status": "abandoned", "pullRequestId": True, "repository": {"name": REPO}},
    }
    req = func.HttpRequest(
        method="POST",
        url="/api/devops/events",
        headers={"Authorization": f"Basic {token}"},
        body=json.dumps(event).encode(),
    )
    resp = function_app.devops_events(req)
    assert resp.status_code == 400
    assert [g.state.value for g in gated.container.gatekeeper._gates.all_gates()] == ["waiting"]


def test_the_job_token_leaves_the_gate_when_it_finishes(gated):
    gated.configure(GATE_USE_JOB_TOKEN="true")
    headers = plan(gated)
    gated.azdo.expected_bearer = headers["AuthToken"]
    assert register(headers, {"environment": "prod", "commit": A})[0] == 200
    [waiting] = gated.container.gatekeeper._gates.all_gates()
    assert waiting.auth_token == headers["AuthToken"]
    prod_deploys(gated, prod_event())
    assert results(gated, headers) == ["succeeded"]
    [done] = gated.container.gatekeeper._gates.all_gates()
    assert done.auth_token == ""
    row = gated.store.table("gates").get_entity(done.environment, done.id)
    assert headers["AuthToken"] not in json.dumps(dict(row), default=str)
