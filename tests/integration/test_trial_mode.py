"""Trial mode leaves no trace (#11.4): with AZDO_DRY_RUN=true nothing is sent and nothing is
recorded as posted; turned off on the same storage, the connector posts every status on the next
event for each object and completes every gate still due. What trial mode did is marked as such
in the deployments view and the CLI; PR look-ups (reads) still work with a PAT."""

from __future__ import annotations

import pytest

from connector.app.root.bootstrap import Container
from connector.core.gates import GateState
from connector.gates.store import GateStore
from connector.settings import Settings
from tests.conftest import BASE_SETTINGS
from tests.gate_views import cli_gates, deployments_view
from tests.integration.test_gates import A, completions, plan, register
from tests.world import PAT, PROJECT, REPO, kustomization, latest

pytestmark = pytest.mark.azurite

PR = 41


def trial_mode(world) -> Container:
    """The app as bootstrap builds it with AZDO_DRY_RUN=true and a PAT (no client override)."""
    from connector.app.root import bootstrap

    settings = Settings.from_env(
        {
            **BASE_SETTINGS,
            "AZDO_ORG_URL": world.azdo.org_url,
            "AZDO_PROJECT": PROJECT,
            "AZDO_GITOPS_REPO": REPO,
            "AZDO_PAT": PAT,
            "AZDO_DRY_RUN": "true",
        }
    )
    world.container = Container(settings, sender=world.sender, store=world.store)
    bootstrap.override(world.container)
    return world.container


def writes(world) -> list:
    return [
        c
        for c in world.azdo.calls()
        if c.method in {"POST", "PATCH"} and "pullrequestquery" not in c.path
    ]


@pytest.fixture
def gated(world):
    world.azdo.add_commit(REPO, A, "Merge pull request 41 from feature/x into main")
    world.azdo.add_pull_request(PR, REPO, status="completed", last_merge_commit=A)
    trial_mode(world)
    by_commit, by_pr = plan(world), plan(world)
    assert register(world, by_commit, environment="dev", commit=A)[0] == 200
    assert register(world, by_pr, environment="dev", pullRequestId=PR)[0] == 200
    world.deliver_queued()
    world.send(kustomization(A, "Progressing", time="2026-05-14T09:12:00Z"))
    world.send(kustomization(A, time="2026-05-14T09:12:50Z"))
    return world, by_commit, by_pr


def test_trial_mode_sends_nothing_and_marks_what_it_would_have_done(gated, capsys):
    world, _, _ = gated
    # THEN no write reached Azure DevOps: no status, no feed, no log, no TaskCompleted
    assert writes(world) == []
    assert world.azdo.commit_statuses(REPO, A) == []
    assert completions(world) == []
    # AND the PR gate was correlated through a real read (its PR's merge commit, with the PAT)
    [query] = world.azdo.calls("GET", f"/pullrequests/{PR}")
    assert query.auth == "basic"
    assert query.status == 200
    # AND both gates still wait, with what trial mode would have done
    gates = GateStore(world.store).all_gates()
    assert {g.state for g in gates} == {GateState.WAITING}
    assert all(g.trial.startswith("would complete succeeded") for g in gates)
    # AND the deployments view and the CLI mark it as trial
    view = deployments_view(world, A)
    assert view["statuses"]
    assert all(s["trial"] and not s["confirmed"] for s in view["statuses"].values())
    assert all(g["trial"].startswith("would complete succeeded") for g in view["gates"])
    listed = cli_gates(world, capsys)
    assert len(listed) == 2
    assert all(g["trial"].startswith("would complete") for g in listed)


def test_real_mode_on_the_same_storage_posts_every_status_and_completes_every_gate(gated):
    world, by_commit, by_pr = gated
    # WHEN trial mode is turned off and each object reports again (Flux's periodic re-send)
    world.configure()
    world.send(kustomization(A, time="2026-05-14T10:00:00Z"))
    # THEN every status trial mode only logged is posted, ending in succeeded
    posted = latest(world.azdo, A)
    assert posted
    assert {s["state"] for s in posted.values()} == {"succeeded"}
    view = deployments_view(world, A)
    assert set(view["statuses"]) == set(posted)
    assert not any(s["trial"] for s in view["statuses"].values())
    # AND both gates complete once, succeeded, and the PR gets its status
    assert [e["result"] for e in completions(world, by_commit)] == ["succeeded"]
    assert [e["result"] for e in completions(world, by_pr)] == ["succeeded"]
    assert world.azdo.pull_request_statuses(PR)[-1]["state"] == "succeeded"
    gates = GateStore(world.store).all_gates()
    assert {g.state for g in gates} == {GateState.SUCCEEDED}
    # AND the stored log tells the story for real
    assert world.azdo.task_log(by_commit["PlanId"], by_commit["TaskInstanceId"])
