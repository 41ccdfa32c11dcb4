"""Tracking and commit statuses end to end: webhook → queue → processor → Azurite + fake ADO."""

from __future__ import annotations

import random
import threading
from itertools import pairwise

import pytest

from connector.devops.client import TransientAzureDevOpsError
from tests.conftest import event_bytes
from tests.world import REPO, kustomization, latest, rollout_events, statuses_by_context

pytestmark = pytest.mark.azurite

C1 = "c8925188500a55dad9563388e537a03dcdded446"


@pytest.fixture
def commit(world):
    world.azdo.add_commit(REPO, C1, "Merged PR 7: bump podinfo")
    return C1


def test_rollout_costs_two_writes_per_context(world, commit):
    world.send(kustomization(commit, "Progressing", time="2026-05-14T09:12:40Z"))
    world.send(kustomization(commit, "ReconciliationSucceeded", time="2026-05-14T09:12:50Z"))
    assert statuses_by_context(world.azdo, commit) == {
        "dev-1/Kustomization/flux-system/apps": ["pending", "succeeded"],
        "env/dev": ["pending", "succeeded"],
    }
    final = latest(world.azdo, commit)
    assert final["dev-1/Kustomization/flux-system/apps"]["description"] == "healthy"
    assert final["env/dev"]["context"]["genre"] == "flux"
    assert world.azdo.status_reads() == []


def test_failure_names_the_reason_and_first_line(world, commit):
    world.send(event_bytes("kustomization-health-failed"))
    final = latest(world.azdo, commit)
    obj = final["dev-1/Kustomization/flux-system/apps"]
    assert obj["state"] == "failed"
    assert obj["description"].startswith("HealthCheckFailed: health check failed after")
    assert final["env/dev"]["state"] == "failed"
    assert "dev-1" in final["env/dev"]["description"]


def test_periodic_resends_duplicates_and_redeliveries_write_nothing(world, commit):
    world.send(kustomization(commit, time="2026-05-14T09:12:50Z"))
    writes = len(world.azdo.status_writes())
    for minute in range(13, 20):  # Flux re-sends ReconciliationSucceeded every interval
        world.send(kustomization(commit, time=f"2026-05-14T09:{minute}:50Z"))
    body = kustomization(commit, time="2026-05-14T09:30:00Z")
    assert world.post(body) == 202
    assert world.post(body) == 202  # a Flux retry of the same delivery
    # The state is settled: both are answered at the ingest door and never queued.
    assert world.deliver_queued(redeliver=True) == 0
    assert len(world.azdo.status_writes()) == writes
    assert world.sender.dropped_duplicates == 0


def test_out_of_order_progressing_after_success_is_ignored(world, commit):
    world.send(kustomization(commit, "ReconciliationSucceeded", time="2026-05-14T09:12:50Z"))
    world.send(kustomization(commit, "Progressing", time="2026-05-14T09:12:40Z"))
    assert statuses_by_context(world.azdo, commit)["dev-1/Kustomization/flux-system/apps"] == [
        "succeeded"
    ]


def test_dependency_not_ready_keeps_it_pending(world, commit):
    world.send(event_bytes("kustomization-dependency-not-ready"))
    assert latest(world.azdo, commit)["env/dev"]["state"] == "pending"


def test_old_events_are_not_dropped_for_being_old(world, commit):
    world.send(kustomization(commit, time="2020-01-01T00:00:00Z"))
    assert latest(world.azdo, commit)["env/dev"]["state"] == "succeeded"


@pytest.mark.parametrize(
    "name",
    [
        "gitrepository-new-artifact",
        "helmrelease-upgrade-succeeded",
        "gitrepository-auth-failed",
        "ocirepository-new-artifact",
        "imagepolicy-unknown-kind",
        "kustomization-access-denied",
    ],
)
def test_sources_and_events_without_commit_set_no_status(world, commit, name):
    world.send(event_bytes(name))
    assert world.azdo.status_writes() == []


def test_target_url_template(world, commit):
    world.configure(STATUS_TARGET_URL="https://portal.example/{env}/{cluster}/{commit}")
    world.send(kustomization(commit))
    final = latest(world.azdo, commit)
    assert final["env/dev"]["targetUrl"] == f"https://portal.example/dev//{commit}"
    assert final["dev-1/Kustomization/flux-system/apps"]["targetUrl"] == (
        f"https://portal.example/dev/dev-1/{commit}"
    )


def test_throttling_and_transient_errors_are_survived(world, commit):
    world.azdo.inject("/statuses", 429, count=1, retry_after="0")
    world.azdo.inject("/statuses", 500, count=1)
    world.send(kustomization(commit))
    assert statuses_by_context(world.azdo, commit) == {
        "dev-1/Kustomization/flux-system/apps": ["succeeded"],
        "env/dev": ["succeeded"],
    }


def test_persistent_outage_raises_for_redelivery_and_loses_nothing(world, commit):
    world.azdo.inject("/statuses", 503, count=50)
    assert world.post(kustomization(commit)) == 202
    [message] = world.sender.drain()
    with pytest.raises(TransientAzureDevOpsError):
        world.process(message)
    world.azdo.clear_faults()
    world.process(message, delivery_count=2)
    assert statuses_by_context(world.azdo, commit) == {
        "dev-1/Kustomization/flux-system/apps": ["succeeded"],
        "env/dev": ["succeeded"],
    }


def test_commit_missing_from_repo_is_recorded_not_retried(world):
    unknown = "f" * 40
    world.send(kustomization(unknown))
    attempts = len(world.azdo.status_writes())
    assert attempts == 2  # one per context, each refused with 404
    world.send(kustomization(unknown, time="2026-05-14T09:20:00Z"))
    assert len(world.azdo.status_writes()) == attempts


CLUSTERS = ("prod-eu", "prod-us", "prod-asia")
OBJECTS = ("apps", "infra")


def test_storm_writes_exactly_one_status_per_change_and_reads_none(world, commit):
    world.configure(ENVIRONMENTS='{"prod":{"clusters":["prod-eu","prod-us","prod-asia"]}}')
    events = rollout_events(commit, CLUSTERS, OBJECTS, resends=3)
    random.Random(7).shuffle(events)
    for event, cluster in events + events[:10]:  # plus duplicate deliveries
        world.post(event, cluster=cluster, env="prod")
    world.deliver_queued(redeliver=True)
    by_context = statuses_by_context(world.azdo, commit)
    assert set(by_context) == {
        f"{c}/Kustomization/flux-system/{o}" for c in CLUSTERS for o in OBJECTS
    } | {"env/prod"}
    for context, states in by_context.items():
        assert states[-1] == "succeeded", context
        assert all(a != b for a, b in pairwise(states)), (context, states)
        assert len(states) <= 2
    assert by_context["env/prod"] == ["pending", "succeeded"]
    assert world.azdo.status_reads() == []


def test_concurrent_processors_lose_nothing(world, commit):
    world.configure(ENVIRONMENTS='{"prod":{"clusters":["prod-eu","prod-us","prod-asia"]}}')
    for cluster in CLUSTERS:
        for name in OBJECTS:
            world.post(kustomization(commit, name=name), cluster=cluster, env="prod")
    messages = world.sender.drain()
    errors: list[BaseException] = []

    def run(batch):
        try:
            for message in batch:
                world.process(message)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(messages[i::3],)) for i in range(3)]
    threads += [threading.Thread(target=run, args=(list(reversed(messages)),))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    by_context = statuses_by_context(world.azdo, commit)
    assert len(by_context) == 7
    assert all(
        states == ["succeeded"] for ctx, states in by_context.items() if ctx != "env/prod"
    ), by_context
    assert by_context["env/prod"][-1] == "succeeded"
    assert all(a != b for a, b in pairwise(by_context["env/prod"]))


def test_trial_mode_logs_what_it_would_send_and_sends_nothing(world, commit, caplog):
    from connector.app.root import bootstrap
    from connector.app.root.bootstrap import Container
    from connector.devops.trial import TrialAzureDevOps

    # GIVEN the app built from settings with AZDO_DRY_RUN=true (no client override)
    # (legacy PR callbacks opted in, so that the rollout makes Azure DevOps reads)
    base = world.configure(AZDO_DRY_RUN="true", LEGACY_CALLBACK_ENVIRONMENT="dev")
    trial = Container(base.settings, sender=world.sender, store=world.store)
    bootstrap.override(trial)
    assert isinstance(trial.devops, TrialAzureDevOps)
    # WHEN a rollout is reported
    with caplog.at_level("INFO", logger="connector.devops.trial"):
        world.send(kustomization(commit))
    # THEN Azure DevOps sees reads only (the PAT is configured), and the log says what would
    # have been posted
    writes = [
        c for c in world.azdo.calls() if c.method != "GET" and "pullrequestquery" not in c.path
    ]
    assert writes == []
    assert world.azdo.calls("GET")
    would = [r.getMessage() for r in caplog.records if "azure_devops.trial" in r.getMessage()]
    assert any("/statuses" in line and "succeeded" in line for line in would), would
