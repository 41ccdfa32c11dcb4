"""A status Azure DevOps refused for want of access (403 before the identity may post, as in
the walkthrough when the permissions come after the first rollout) is posted by the next sweep
once access is granted, without the object changing; posted once, then forgotten."""

from __future__ import annotations

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

import function_app
from connector.storage.ledger import refused_statuses
from tests.world import REPO, kustomization, statuses_by_context

pytestmark = pytest.mark.azurite

C1 = "c8925188500a55dad9563388e537a03dcdded446"
OBJECT = "dev-1/Kustomization/flux-system/apps"


def sweep() -> None:
    timer: func.TimerRequest = TimerRequest(past_due=False)
    function_app.sweep(timer)


@pytest.fixture
def commit(world):
    world.configure()
    world.azdo.add_commit(REPO, C1, "Merged PR 7: bump podinfo")
    return C1


def test_a_refused_status_is_posted_by_the_sweep_once_access_is_granted(world, commit):
    world.azdo.inject("/statuses", 403, count=2, method="POST")  # both contexts refused
    world.send(kustomization(commit, "ReconciliationSucceeded"))
    assert statuses_by_context(world.azdo, commit) == {}
    table = world.store.table("deployments")
    assert {r.context for r in refused_statuses(table)} == {OBJECT, "env/dev"}

    sweep()  # access granted meanwhile: the fault was only for two posts

    assert statuses_by_context(world.azdo, commit) == {
        OBJECT: ["succeeded"],
        "env/dev": ["succeeded"],
    }
    assert refused_statuses(table) == []
    writes = len(world.azdo.status_writes())
    sweep()  # nothing left: no post
    assert len(world.azdo.status_writes()) == writes


def test_still_refused_stays_listed_for_the_next_sweep(world, commit):
    world.azdo.inject("/statuses", 403, count=4, method="POST")
    world.send(kustomization(commit, "ReconciliationSucceeded"))
    sweep()  # refused again
    table = world.store.table("deployments")
    assert len(refused_statuses(table)) == 2
    sweep()
    assert statuses_by_context(world.azdo, commit)[OBJECT] == ["succeeded"]
    assert refused_statuses(table) == []


def test_a_refused_status_posted_by_a_later_event_is_not_posted_twice(world, commit):
    world.azdo.inject("/statuses", 403, count=2, method="POST")
    world.send(kustomization(commit, "ReconciliationSucceeded", time="2026-05-14T09:12:50Z"))
    # Flux's periodic re-send of the same state: the refused statuses go out with it.
    world.send(kustomization(commit, "ReconciliationSucceeded", time="2026-05-14T09:22:50Z"))
    assert statuses_by_context(world.azdo, commit)[OBJECT] == ["succeeded"]
    sweep()  # finds them posted: forgets them, posts nothing
    assert statuses_by_context(world.azdo, commit)[OBJECT] == ["succeeded"]
    assert refused_statuses(world.store.table("deployments")) == []
