"""What a Spektate user sees: rows written by `SpektateWriter` in Azurite, read back the way the
dashboard reads them (`tests/spektate_dashboard.py`, from Spektate's POC source)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from connector.core.tracking import ObjectRef, Phase, Verdict
from connector.outputs.spektate import SpektateWriter
from connector.storage.rows import connect
from tests.integration.test_spektate import C1, T0, notify, observe, pipeline_row
from tests.spektate_dashboard import RunningDashboard, load_deployments, load_flux

pytestmark = pytest.mark.azurite

DASH = "\u2013"


@pytest.fixture
def service(azurite_connection: str) -> Any:
    return connect(connection_string=azurite_connection)


@pytest.fixture
def partition() -> str:
    return f"dash-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def flux_table(service: Any) -> Any:
    return service.create_table_if_not_exists("flux")


@pytest.fixture
def deployments(service: Any) -> Iterator[Any]:
    name = "dashdeployments" + uuid.uuid4().hex[:12]
    table = service.create_table(name)
    yield table
    service.delete_table(name)


@pytest.fixture
def writer(flux_table: Any, deployments: Any, partition: str) -> SpektateWriter:
    return SpektateWriter(flux_table, partition_key=partition, deployments=deployments)


@pytest.fixture
def dashboard(flux_table: Any, deployments: Any, partition: str) -> RunningDashboard:
    return RunningDashboard(deployments, flux_table, partition)


def etag(table: Any, partition: str, row_key: str) -> str:
    return str(table.get_entity(partition, row_key).metadata["etag"])


def test_the_panel_names_phase_and_reason_of_each_change(
    writer, deployments, flux_table, partition
):
    # GIVEN a deployment the pipelines created for the HLD commit Flux reconciles
    row = pipeline_row(partition, hldCommitId=C1[:7])
    deployments.create_entity(row)

    # WHEN Flux reports progress, success on one cluster and failure on another
    notify(writer, observe(Phase.PROGRESSING, summary="ConfigMap/apps/web-config created"))
    notify(writer, observe(Phase.SUCCEEDED, at=T0 + timedelta(seconds=43)))
    notify(writer, observe(Phase.FAILED, cluster="dev-2", summary="health check failed after 5m"))

    # THEN the dashboard joins them to the row by its 7-char manifestCommitId
    [deployment] = load_deployments(deployments, partition)
    assert deployment.manifest_commit_id == C1[:7]
    groups = load_flux(flux_table, partition)
    assert list(groups) == [C1[:7]]
    deployment.flux_status = groups[deployment.manifest_commit_id]
    # AND each displayed message says the phase and the reason (order: the rows' Timestamps)
    assert [line.message for line in deployment.panel()] == [
        f"dev/dev-1 Kustomization/flux-system/apps: pending (Progressing) {DASH} "
        "ConfigMap/apps/web-config created",
        f"dev/dev-1 Kustomization/flux-system/apps: succeeded (ReconciliationSucceeded) {DASH} "
        "Reconciliation finished in 43.9s",
        f"dev/dev-2 Kustomization/flux-system/apps: failed (HealthCheckFailed) {DASH} "
        "health check failed after 5m",
    ]
    # AND `status_name` still reaches the API (not the screen) as it was
    assert [item.status for item in deployment.flux_status] == [
        "dev/dev-1: Progressing",
        "dev/dev-1: ReconciliationSucceeded",
        "dev/dev-2: HealthCheckFailed",
    ]


def test_a_running_dashboard_shows_each_new_notification_on_a_complete_row(
    writer, deployments, dashboard, partition
):
    # GIVEN a Complete deployment, already linked by the p3 pipeline, on screen with no reports
    row = pipeline_row(partition, p3="8815", manifestCommitId=C1[:7])
    deployments.create_entity(row)
    dashboard.refresh()
    assert dashboard.panel(row["RowKey"]) == []

    # WHEN Flux reports the rollout, with a dashboard refresh after each report
    shown = []
    for phase, delay in ((Phase.PROGRESSING, 0), (Phase.SUCCEEDED, 40)):
        notify(writer, observe(phase, at=T0 + timedelta(seconds=delay)))
        dashboard.refresh()
        shown.append(dashboard.panel(row["RowKey"]))

    # THEN every report appears, although the row is Complete
    assert [len(panel) for panel in shown] == [1, 2]
    assert "pending (Progressing)" in shown[0][0]
    assert "succeeded (ReconciliationSucceeded)" in shown[1][1]
    # AND nothing the pipelines wrote changed: the touch added only its own property
    stored = dict(deployments.get_entity(partition, row["RowKey"]))
    assert set(stored) - set(row) == {"fluxUpdatedAt"}
    assert {k: stored[k] for k in row} == row


def test_at_most_one_touch_per_notification(writer, deployments, partition):
    row = pipeline_row(partition, p3="8815", manifestCommitId=C1[:7])
    deployments.create_entity(row)
    obs = observe(Phase.SUCCEEDED)
    notify(writer, obs)
    touched = etag(deployments, partition, row["RowKey"])

    notify(writer, obs)  # a redelivery processed as a change again
    notify(writer, obs, Verdict.UNCHANGED)  # a redelivery after the state was recorded
    notify(writer, observe(Phase.SUCCEEDED, at=T0 + timedelta(minutes=10)), Verdict.UNCHANGED)

    assert etag(deployments, partition, row["RowKey"]) == touched


def test_only_rows_showing_the_commit_are_touched(writer, deployments, partition):
    linked = [pipeline_row(partition, manifestCommitId=C1[:7]) for _ in range(2)]
    other = pipeline_row(partition, manifestCommitId="fedcba9")
    unlinked = pipeline_row(partition)
    for row in (*linked, other, unlinked):
        deployments.create_entity(row)
    before = {r["RowKey"]: etag(deployments, partition, r["RowKey"]) for r in (other, unlinked)}

    notify(writer, observe(obj=ObjectRef("HelmRelease", "apps", "web")))

    for row in linked:
        assert "fluxUpdatedAt" in deployments.get_entity(partition, row["RowKey"])
    after = {r["RowKey"]: etag(deployments, partition, r["RowKey"]) for r in (other, unlinked)}
    assert after == before
    assert len(list(deployments.list_entities())) == 4  # never creates rows
