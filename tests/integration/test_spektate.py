"""Spektate writer against Azurite: entities read back as the dashboard reads them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError

from connector.app.root import bootstrap
from connector.app.root.bootstrap import Container
from connector.core.processing import Change, ChangeListener, Processor
from connector.core.state import Recorded
from connector.core.tracking import (
    EnvironmentResult,
    ObjectRef,
    ObjectState,
    Observation,
    Phase,
    Verdict,
    cluster_result,
    environment_result,
)
from connector.outputs.spektate import SpektateWriter
from connector.outputs.spektate_errors import SpektateError
from connector.outputs.spektate_rows import (
    MESSAGE_LIMIT,
    DeploymentLinks,
    change_id,
    repository_url,
)
from connector.storage.rows import connect
from tests.world import REPO, World, kustomization

pytestmark = pytest.mark.azurite

C1 = "c8925188500a55dad9563388e537a03dcdded446"
HLD = "e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3"
APPS = ObjectRef("Kustomization", "flux-system", "apps")
T0 = datetime(2026, 5, 14, 9, 12, 40, tzinfo=UTC)
WRITTEN_AT = datetime(2026, 5, 14, 9, 13, 1, tzinfo=UTC)
MANIFEST_REPO = "https://dev.azure.com/fabrikam/app/_git/manifests"
REASONS = {
    Phase.PROGRESSING: "Progressing",
    Phase.SUCCEEDED: "ReconciliationSucceeded",
    Phase.FAILED: "HealthCheckFailed",
}


# --- builders (shared with test_subscribers) --------------------------------------------------


def observe(
    phase: Phase = Phase.SUCCEEDED,
    *,
    commit: str = C1,
    cluster: str = "dev-1",
    env: str = "dev",
    obj: ObjectRef = APPS,
    at: datetime = T0,
    summary: str = "Reconciliation finished in 43.9s",
    metadata: Mapping[str, str] | None = None,
) -> Observation:
    values: dict[str, Any] = {
        "cluster": cluster,
        "env": env,
        "obj": obj,
        "commit": commit,
        "phase": phase,
        "reason": REASONS[phase],
        "summary": summary,
        "time": at,
        "message_id": uuid.uuid4().hex,
        "is_source": False,
    }
    if metadata is not None:
        return Observation(**values, metadata=metadata)
    return Observation(**values)


def record(obs: Observation, verdict: Verdict = Verdict.CHANGED) -> Recorded:
    assert obs.phase is not None
    state = ObjectState(obs.phase, obs.reason, obs.summary, obs.time, obs.time)
    return Recorded(verdict, state)


def rollup(obs: Observation, recorded: Recorded) -> EnvironmentResult:
    assert recorded.state is not None
    cluster = cluster_result(obs.cluster, {obs.obj: recorded.state}, [obs.obj])
    return environment_result(obs.env, [cluster])


def notify(listener: ChangeListener, obs: Observation, verdict: Verdict = Verdict.CHANGED) -> None:
    recorded = record(obs, verdict)
    listener.on_change(Change(obs, recorded, lambda: rollup(obs, recorded)))


def resend(obs: Observation, minutes: int = 10) -> Observation:
    """A periodic re-send of the same state: later, with a new message id."""
    return replace(obs, time=obs.time + timedelta(minutes=minutes), message_id=uuid.uuid4().hex)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def service(azurite_connection: str) -> Any:
    return connect(connection_string=azurite_connection)


@pytest.fixture
def partition() -> str:
    """Unique per test, so tests sharing the `flux` table do not see each other's rows."""
    return f"fabrikam-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def flux_table(service: Any) -> Any:
    return service.create_table_if_not_exists("flux")


@pytest.fixture
def deployments(service: Any) -> Iterator[Any]:
    name = "deployments" + uuid.uuid4().hex[:12]
    table = service.create_table(name)
    yield table
    service.delete_table(name)


@pytest.fixture
def writer(flux_table: Any, deployments: Any, partition: str) -> SpektateWriter:
    return SpektateWriter(
        flux_table,
        partition_key=partition,
        deployments=deployments,
        manifest_repo=MANIFEST_REPO,
        clock=lambda: WRITTEN_AT,
    )


def dashboard_view(table: Any, partition: str) -> list[dict[str, Any]]:
    """What the Flux view loads: the partition's rows, `Notification` parsed, oldest first."""
    rows = table.query_entities(f"PartitionKey eq '{partition}'")
    notes = [json.loads(row["Notification"]) for row in rows]
    return sorted(notes, key=lambda n: (n["time"], n["state"]))


def pipeline_row(partition: str, **fields: str) -> dict[str, str]:
    """A deployments row as the Bedrock pipelines write it (p1 + p2 so far)."""
    return {
        "PartitionKey": partition,
        "RowKey": uuid.uuid4().hex[:12],
        "p1": "8812",
        "commitId": "a1b2c3d",
        "imageTag": "hello-spektate-8812",
        "service": "hello-spektate",
        "p2": "8812",
        "env": "dev",
        "hldRepo": "https://dev.azure.com/fabrikam/app/_git/hld",
        **fields,
    }


# --- the flux table ---------------------------------------------------------------------------


def test_state_change_is_written_in_the_shape_the_flux_view_reads(writer, flux_table, partition):
    notify(writer, observe(Phase.SUCCEEDED))

    [note] = dashboard_view(flux_table, partition)
    assert note == {
        "commit_id": C1,
        "status_name": "dev/dev-1: ReconciliationSucceeded",
        "state": "succeeded",
        "message": "dev/dev-1 Kustomization/flux-system/apps: succeeded (ReconciliationSucceeded)"
        " \u2013 Reconciliation finished in 43.9s",
        "gitops_operator": "Flux",
        "genre": "Kustomization",
        "env": "dev",
        "cluster": "dev-1",
        "object": "Kustomization/flux-system/apps",
        "time": "2026-05-14T09:12:40+00:00",
    }


def test_each_change_is_one_row_and_resends_and_redeliveries_add_none(
    writer, flux_table, partition
):
    progressing = observe(Phase.PROGRESSING)
    succeeded = observe(Phase.SUCCEEDED, at=T0 + timedelta(seconds=10))
    notify(writer, progressing)
    notify(writer, progressing, Verdict.UNCHANGED)  # Service Bus redelivery
    notify(writer, succeeded)
    for minutes in (10, 20, 30):  # Flux re-sends the result every interval
        notify(writer, resend(succeeded, minutes), Verdict.UNCHANGED)

    states = [n["state"] for n in dashboard_view(flux_table, partition)]
    assert states == ["pending", "succeeded"]


def test_clusters_and_objects_get_their_own_rows(writer, flux_table, partition):
    infra = ObjectRef("Kustomization", "flux-system", "infra")
    for cluster in ("prod-eu", "prod-us"):
        for obj in (APPS, infra):
            notify(writer, observe(cluster=cluster, env="prod", obj=obj))

    names = sorted(
        n["status_name"] + " " + n["object"] for n in dashboard_view(flux_table, partition)
    )
    assert len(names) == 4
    assert names[0] == "prod/prod-eu: ReconciliationSucceeded Kustomization/flux-system/apps"


def test_a_failure_carries_a_capped_message(writer, flux_table, partition):
    notify(writer, observe(Phase.FAILED, summary="x" * 40_000))

    [note] = dashboard_view(flux_table, partition)
    assert note["state"] == "failed"
    assert note["status_name"] == "dev/dev-1: HealthCheckFailed"
    assert len(note["message"]) == MESSAGE_LIMIT
    assert note["message"].endswith("…")


def test_the_row_id_follows_the_recorded_state_not_the_resent_event():
    first = observe(Phase.SUCCEEDED)
    later = resend(first)
    first_state = record(first).state
    failed = observe(Phase.FAILED)
    failed_state = record(failed).state
    assert first_state is not None
    assert failed_state is not None
    assert change_id(C1, first, first_state) == change_id(C1, later, first_state)
    assert change_id(C1, first, first_state) != change_id(C1, failed, failed_state)


def test_a_failed_write_raises_and_the_retry_writes_it_once(flux_table, partition):
    class Flaky:
        """The real table, except that the first insert does not reach it."""

        def __init__(self, table: Any) -> None:
            self.table, self.failures = table, 1
            self.table_name = table.table_name

        def create_table(self) -> Any:
            return self.table.create_table()

        def get_entity(self, partition_key: str, row_key: str, *, select: Any = None) -> Any:
            return self.table.get_entity(partition_key, row_key, select=select)

        def create_entity(self, entity: Mapping[str, Any]) -> Any:
            if self.failures:
                self.failures -= 1
                raise ServiceRequestError("connection refused")
            return self.table.create_entity(entity)

    writer = SpektateWriter(Flaky(flux_table), partition_key=partition)
    obs = observe()
    with pytest.raises(SpektateError, match="ServiceRequestError"):
        notify(writer, obs)
    notify(writer, obs, Verdict.UNCHANGED)  # the redelivery
    notify(writer, obs, Verdict.UNCHANGED)

    assert len(dashboard_view(flux_table, partition)) == 1


def test_a_missing_table_is_created_on_first_use(service, partition):
    name = "flux" + uuid.uuid4().hex[:8]  # a table nobody created (a fresh account: see _errors)
    writer = SpektateWriter(service.get_table_client(name), partition_key=partition)
    notify(writer, observe())
    assert len(dashboard_view(service.get_table_client(name), partition)) == 1
    service.delete_table(name)


def test_the_manifest_repository_url_is_the_web_url():
    url = repository_url("https://dev.azure.com/fabrikam/", "app project", "manifests")
    assert url == "https://dev.azure.com/fabrikam/app%20project/_git/manifests"
    assert repository_url("https://dev.azure.com/fabrikam", "app", "") == ""


def test_the_partition_key_is_required(flux_table):
    with pytest.raises(ValueError, match="SPEKTATE_PARTITION_KEY"):
        SpektateWriter(flux_table, partition_key="")


# --- the deployments row ----------------------------------------------------------------------


def test_the_deployment_row_of_the_commit_is_merged_and_keeps_pipeline_fields(
    writer, deployments, partition
):
    # GIVEN Flux reconciles the HLD repository itself: the HLD commit is the deployed commit
    row = pipeline_row(partition, hldCommitId=C1[:7], pr="1371")
    other = pipeline_row(partition, hldCommitId="0123456")
    deployments.create_entity(row)
    deployments.create_entity(other)

    notify(writer, observe(Phase.PROGRESSING))
    notify(writer, observe(Phase.SUCCEEDED, at=T0 + timedelta(seconds=9)))

    linked = dict(deployments.get_entity(partition, row["RowKey"]))
    assert linked == {
        **row,
        "manifestCommitId": C1[:7],
        "manifestRepo": MANIFEST_REPO,
        "fluxUpdatedAt": WRITTEN_AT.isoformat(),
    }
    assert dict(deployments.get_entity(partition, other["RowKey"])) == other


def test_the_row_is_found_by_hld_commit_metadata_then_by_pull_request(
    writer, deployments, partition
):
    by_commit = pipeline_row(partition, hldCommitId=HLD)  # stored in full by some writers
    by_pr = pipeline_row(partition, hldCommitId="9999999", pr="1371")
    deployments.create_entity(by_commit)
    deployments.create_entity(by_pr)

    notify(writer, observe(metadata={"hldCommit": HLD.upper()}))
    c2 = "d" * 40
    meta = {"event.toolkit.fluxcd.io/change_request": "1371", "hldCommit": "abcdef0"}
    notify(writer, observe(commit=c2, metadata=meta))

    assert deployments.get_entity(partition, by_commit["RowKey"])["manifestCommitId"] == C1[:7]
    assert deployments.get_entity(partition, by_pr["RowKey"])["manifestCommitId"] == c2[:7]


def test_links_can_come_from_elsewhere(flux_table, deployments, partition):
    row = pipeline_row(partition, pr="42")
    deployments.create_entity(row)
    writer = SpektateWriter(
        flux_table,
        partition_key=partition,
        deployments=deployments,
        links=lambda obs: DeploymentLinks(hld_commit=None, pull_request="42"),
    )
    notify(writer, observe())
    linked = deployments.get_entity(partition, row["RowKey"])
    assert linked["manifestCommitId"] == C1[:7]
    assert "manifestRepo" not in linked  # not configured: not written


def test_rows_are_never_created_and_pipeline_links_are_never_overwritten(
    writer, deployments, partition
):
    p3_linked = pipeline_row(partition, hldCommitId=C1[:7], p3="8815", manifestCommitId="fedcba9")
    deployments.create_entity(p3_linked)
    before = deployments.get_entity(partition, p3_linked["RowKey"])

    notify(writer, observe())
    notify(writer, observe(commit="b" * 40))  # no row for this commit

    after = deployments.get_entity(partition, p3_linked["RowKey"])
    assert after.metadata["etag"] == before.metadata["etag"]  # not even rewritten
    assert len(list(deployments.list_entities())) == 1


def test_an_already_linked_row_gains_only_the_update_time(writer, deployments, partition):
    row = pipeline_row(
        partition, hldCommitId=C1[:7], manifestCommitId=C1[:7], manifestRepo=MANIFEST_REPO
    )
    deployments.create_entity(row)
    notify(writer, observe())
    after = dict(deployments.get_entity(partition, row["RowKey"]))
    assert after == {**row, "fluxUpdatedAt": WRITTEN_AT.isoformat()}


# --- end to end -------------------------------------------------------------------------------


def install_listeners(world: World, *listeners: ChangeListener) -> Container:
    """The world's container, with a processor that has these listeners."""
    base = world.container
    assert base is not None
    processor = Processor(
        base.settings.environments, world.store, listeners=[base.commit_statuses, *listeners]
    )
    container = Container(
        base.settings,
        sender=world.sender,
        store=world.store,
        devops=base.devops,
        commit_statuses=base.commit_statuses,
        processor=processor,
    )
    bootstrap.override(container)
    return container


def test_flux_event_to_spektate_entity_end_to_end(
    world, writer, flux_table, deployments, partition
):
    world.azdo.add_commit(REPO, C1, "Merged PR 7: bump podinfo")
    row = pipeline_row(partition, hldCommitId=C1[:7])
    deployments.create_entity(row)
    install_listeners(world, writer)

    world.send(kustomization(C1, "Progressing", time="2026-05-14T09:12:40Z"))
    world.send(kustomization(C1, time="2026-05-14T09:12:50Z"))
    world.send(kustomization(C1, time="2026-05-14T09:22:50Z"))  # periodic re-send
    assert world.post(kustomization(C1, time="2026-05-14T09:32:50Z")) == 202
    world.deliver_queued(redeliver=True)

    view = dashboard_view(flux_table, partition)
    assert [(n["status_name"], n["state"]) for n in view] == [
        ("dev/dev-1: Progressing", "pending"),
        ("dev/dev-1: ReconciliationSucceeded", "succeeded"),
    ]
    assert all(n["commit_id"] == C1 for n in view)
    assert deployments.get_entity(partition, row["RowKey"])["manifestCommitId"] == C1[:7]
    assert len(world.azdo.status_writes()) == 4  # statuses unaffected by the listener


def test_three_repositories_link_rows_by_the_verified_hld_commit(
    flux_table, deployments, partition, azdo
):
    """No Flux annotation: the manifests commit's trailer, verified in the HLD repository."""
    from connector.devops.client import AzureDevOpsClient
    from connector.devops.links import CommitLinks, Repositories
    from connector.outputs.spektate_rows import links_from_commits
    from tests.world import PAT, PROJECT

    class Facts(dict):
        def fact(self, kind, *parts):
            return self.get((kind, *parts))

        def remember(self, kind, parts, value):
            self[(kind, *parts)] = value

    azdo.add_repository("manifests")
    azdo.add_repository("hld")
    azdo.add_commit("hld", HLD, "Merged PR 1371: dev: hello-spektate")
    azdo.add_commit("manifests", C1, f"Render dev\n\nHLD-Commit: {HLD}")
    client = AzureDevOpsClient(azdo.org_url, PROJECT, pat=PAT, retry_total=0)
    links = CommitLinks(client, Facts(), Repositories("manifests", "hld"))
    row = pipeline_row(partition, hldCommitId=HLD[:7])
    deployments.create_entity(row)
    writer = SpektateWriter(
        flux_table,
        partition_key=partition,
        deployments=deployments,
        manifest_repo=MANIFEST_REPO,
        clock=lambda: WRITTEN_AT,
        links=links_from_commits(links),
    )
    notify(writer, observe())  # no metadata at all
    assert deployments.get_entity(partition, row["RowKey"])["manifestCommitId"] == C1[:7]
