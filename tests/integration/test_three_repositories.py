"""The three-repository flow on the loopback Azure DevOps with two repositories: a CD stage's
gate on an HLD pull request (or commit), a generation pipeline rendering the HLD into the
manifests repository, Flux reporting the manifests commit. Each commit-message convention, with
and without a sweep between the HLD merge and the generated commit."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

import function_app
from connector.app.views.deployments_model import deployment_view
from connector.app.views.deployments_page import render_html
from connector.gates.store import GateStore
from tests.integration.test_gates import plan
from tests.world import REPO, kustomization

pytestmark = pytest.mark.azurite

HLD = "hld"
H0, H1, H2 = ("0" * 39 + "1", "1" * 40, "2" * 40)  # HLD: base, merge of PR 42, merge of PR 43
M0, M1 = ("e" * 40, "f" * 40)  # manifests: before, generated from the HLD merge(s)
MERGED = datetime(2026, 5, 14, 8, 59, 30, 500000, tzinfo=UTC)  # generated commits: 09:00:00
MERGE_MESSAGE = "Merged PR 42: dev: hello-web 1234"

# Each convention and whether a gate on PR 42 may complete from it (the ones that name no HLD
# commit and no PR wait, saying why).
CONVENTIONS = {
    "merge message copied": (MERGE_MESSAGE, True),
    "bedrock": (f"Updated k8s manifest files post commit: {MERGE_MESSAGE}", True),
    "merge message on a later line": (f"Render manifests for hld@1111111\n\n{MERGE_MESSAGE}", True),
    "trailer": (f"Generated from HLD 1111111\n\nHLD-Commit: {H1}\nHLD-Pull-Request: 42", True),
    "short sha only": ("Generated from HLD 1111111", False),
    "pr number without the merge format": ("chore(manifests): render dev from HLD PR #42", False),
}


@pytest.fixture
def three(world):
    world.azdo.add_repository(HLD)
    world.azdo.add_commit(HLD, H0, "initial")
    world.azdo.add_commit(HLD, H1, MERGE_MESSAGE, parents=[H0])
    world.azdo.add_commit(REPO, M0, "Generated from HLD 0000001")
    world.azdo.add_pull_request(42, HLD, status="active")
    world.configure(AZDO_PR_REPO=HLD, GATE_FAILURE_GRACE_SECONDS="0")
    return world


def register(world, **body) -> dict[str, str]:
    headers = plan(world)
    req = func.HttpRequest(
        method="POST", url="/api/gates", headers=headers, body=json.dumps(body).encode()
    )
    assert function_app.gates(req).status_code == 200
    world.deliver_queued()  # the registration's own check: nothing deployed yet
    return headers


def results(world, headers) -> list[str]:
    events = world.azdo.task_completed_events()
    return [e["result"] for e in events if e["jobId"].lower() == headers["JobId"].lower()]


def merge(world, number: int, commit: str) -> None:
    pr = world.azdo.pull_requests[number]
    pr.status, pr.last_merge_commit, pr.closed_date = "completed", commit, MERGED


def sweep(world) -> None:
    world.container.gatekeeper.sweep()
    world.deliver_queued()


def stored_gate(world, headers):
    [gate] = [g for g in GateStore(world.store).all_gates() if g.plan.job_id == headers["JobId"]]
    return gate


@pytest.mark.parametrize("swept", [False, True], ids=["no sweep", "sweep in between"])
@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_each_message_convention_with_and_without_a_sweep(three, convention, swept):
    world = three
    message, completes = CONVENTIONS[convention]
    headers = register(world, environment="dev", pullRequestId=42, repository=HLD)
    merge(world, 42, H1)
    if swept:
        sweep(world)  # learns the PR's merge commit, an HLD commit: never the gate's deployment
        assert stored_gate(world, headers).hld_commit == H1
    world.azdo.add_commit(REPO, M1, message, parents=[M0])
    world.send(kustomization(M1, "Progressing", time="2026-05-14T09:02:00Z"))
    world.send(kustomization(M1, time="2026-05-14T09:03:00Z"))
    assert results(world, headers) == (["succeeded"] if completes else [])
    gate = stored_gate(world, headers)
    if completes:
        assert gate.commit == M1
        assert gate.hld_commit == H1
        view = deployment_view(world.store, {}, M1)
        assert view["link"]["hld_commits"] == [H1]
        assert [g["hld_commit"] for g in view["gates"]] == [H1]
        return
    # It waits, and says which commit lacks what, and how to add it.
    assert gate.state.value == "waiting"
    assert f"manifests commit {M1[:8]} is not linked" in gate.link_problem
    assert "HLD-Commit" in gate.link_problem
    sweep(world)
    log = "\n".join(world.azdo.task_log(headers["PlanId"], headers["TaskInstanceId"]))
    assert f"manifests commit {M1[:8]} is not linked" in log
    view = deployment_view(world.store, {}, M1)
    assert view["link"]["hld_commits"] == []
    assert "HLD-Commit" in view["link"]["problem"]
    assert "not linked" in render_html(view)


def test_the_generation_runs_before_the_hook_or_the_sweep_learns_the_merge(three):
    """The event itself reads the PR: no sweep needed for the trailer convention either."""
    world = three
    headers = register(world, environment="dev", pullRequestId=42, repository=HLD)
    merge(world, 42, H1)
    world.azdo.add_commit(REPO, M1, f"Render\n\nHLD-Commit: {H1}", parents=[M0])
    world.send(kustomization(M1))
    assert results(world, headers) == ["succeeded"]


def test_two_merges_one_generation_run_release_both_gates(three):
    world = three
    world.azdo.add_commit(HLD, H2, "Merged PR 43: dev: hello-api 77", parents=[H1])
    world.azdo.add_pull_request(43, HLD, status="active")
    first = register(world, environment="dev", pullRequestId=42, repository=HLD)
    second = register(world, environment="dev", pullRequestId=43, repository=HLD)
    merge(world, 42, H1)
    merge(world, 43, H2)
    sweep(world)
    # One run renders both merges; its trailer names the newer HLD commit only.
    world.azdo.add_commit(REPO, M1, f"Render dev\n\nHLD-Commit: {H2}", parents=[M0])
    world.send(kustomization(M1))
    assert results(world, first) == ["succeeded"]
    assert results(world, second) == ["succeeded"]


def test_a_gate_registered_by_hld_commit(three):
    world = three
    headers = register(world, environment="dev", commit=H1, repository=HLD)
    gate = stored_gate(world, headers)
    assert (gate.commit, gate.hld_commit) == (None, H1)
    world.azdo.add_commit(REPO, M1, f"Render dev\n\nHLD-Commit: {H1}", parents=[M0])
    world.send(kustomization(M1))
    assert results(world, headers) == ["succeeded"]


def test_an_older_hld_commit_completes_nothing(three):
    """A manifests commit rendered from H0 does not carry H1."""
    world = three
    headers = register(world, environment="dev", commit=H1, repository=HLD)
    world.azdo.add_commit(REPO, M1, f"Render dev\n\nHLD-Commit: {H0}", parents=[M0])
    world.send(kustomization(M1))
    assert results(world, headers) == []


def test_a_failure_of_the_generated_commit_fails_the_gate(three):
    world = three
    headers = register(world, environment="dev", pullRequestId=42, repository=HLD)
    merge(world, 42, H1)
    world.azdo.add_commit(REPO, M1, f"Render dev\n\nHLD-Commit: {H1}", parents=[M0])
    world.send(kustomization(M1, "HealthCheckFailed", message="timeout waiting for: Deployment"))
    sweep(world)
    assert results(world, headers) == ["failed"]


def test_a_claim_about_an_active_pr_completes_nothing(three):
    world = three
    headers = register(world, environment="dev", pullRequestId=42, repository=HLD)
    world.azdo.add_commit(REPO, M1, MERGE_MESSAGE, parents=[M0])  # PR 42 is still active
    world.send(kustomization(M1))
    sweep(world)
    assert results(world, headers) == []
    assert "pull request 42 is active, not completed" in stored_gate(world, headers).link_problem


def test_a_trailer_naming_a_commit_outside_the_hld_repository_completes_nothing(three):
    world = three
    headers = register(world, environment="dev", commit=H1, repository=HLD)
    world.azdo.add_commit(REPO, M1, f"Render dev\n\nHLD-Commit: {'9' * 40}", parents=[M0])
    world.send(kustomization(M1))
    assert results(world, headers) == []
    assert "not in the HLD repository" in stored_gate(world, headers).link_problem


def test_argo_cd_hydrator_metadata_links_the_dry_commit(three):
    world = three
    headers = register(world, environment="dev", commit=H1, repository=HLD)
    metadata = json.dumps({"drySha": H1, "repoURL": "https://example.invalid/hld"})
    world.azdo.add_commit(
        REPO, M1, "1111111: hydrate", parents=[M0], files={"/hydrator.metadata": metadata}
    )
    world.send(kustomization(M1))
    assert results(world, headers) == ["succeeded"]


def test_the_environment_status_is_posted_on_the_hld_commit(three):
    world = three
    register(world, environment="dev", pullRequestId=42, repository=HLD)
    merge(world, 42, H1)
    world.azdo.add_commit(REPO, M1, f"Render dev\n\nHLD-Commit: {H1}", parents=[M0])
    world.send(kustomization(M1, "Progressing", time="2026-05-14T09:02:00Z"))
    world.send(kustomization(M1, time="2026-05-14T09:03:00Z"))
    world.send(kustomization(M1, time="2026-05-14T09:13:00Z"))  # a periodic re-send: nothing
    on_hld = [(s["context"]["name"], s["state"]) for s in world.azdo.commit_statuses(HLD, H1)]
    assert on_hld == [("env/dev", "pending"), ("env/dev", "succeeded")]
    # Per-object statuses stay on the manifests commit.
    names = {s["context"]["name"] for s in world.azdo.commit_statuses(REPO, M1)}
    assert names == {"dev-1/Kustomization/flux-system/apps", "env/dev"}


def test_link_reads_per_manifests_commit(three):
    """The link is read once per manifests commit, then remembered."""
    world = three
    register(world, environment="dev", pullRequestId=42, repository=HLD)
    merge(world, 42, H1)
    world.azdo.add_commit(REPO, M1, f"{MERGE_MESSAGE}\n\nHLD-Commit: {H1}", parents=[M0])
    world.azdo.clear_calls()
    world.send(kustomization(M1, "Progressing", time="2026-05-14T09:02:00Z"))
    link_reads = [c for c in world.azdo.calls("GET") if f"/commits/{M1}" in c.path]
    assert len(link_reads) == 1
    world.azdo.clear_calls()
    world.send(kustomization(M1, time="2026-05-14T09:03:00Z"))
    assert not [c for c in world.azdo.calls("GET") if "/commits/" in c.path]


def test_a_refused_status_on_the_hld_commit_is_posted_once_access_is_granted(three):
    """The connector may post on the manifests repository before it may on the HLD one."""
    world = three
    world.azdo.add_commit(REPO, M1, f"Render dev\n\nHLD-Commit: {H1}", parents=[M0])
    world.azdo.inject(f"/repositories/{HLD}/commits/{H1}/statuses", 403, count=1, method="POST")
    world.send(kustomization(M1))
    assert world.azdo.commit_statuses(HLD, H1) == []
    function_app.sweep(TimerRequest(past_due=False))  # the timer: gates, then refused statuses
    on_hld = [(s["context"]["name"], s["state"]) for s in world.azdo.commit_statuses(HLD, H1)]
    assert on_hld == [("env/dev", "succeeded")]


def test_the_commit_page_names_the_hld_commit_it_was_rendered_from(three):
    from tests.integration.test_ui_pages import get

    world = three
    world.azdo.add_commit(REPO, M1, f"Render dev\n\nHLD-Commit: {H1}", parents=[M0])
    world.send(kustomization(M1))
    page = get(f"/api/ui/{M1}", format="json")
    assert page.status_code == 200
    assert json.loads(page.get_body())["hld_commit"] == H1
