"""Expected clusters expire (`connector.storage.clusters`): in an environment that
`ENVIRONMENTS` does not list, a cluster is expected while it reported within
`CLUSTER_REPORT_WINDOW_DAYS` of the environment's newest report; `clusters --forget` removes one;
`doctor` names clusters that stopped reporting. The memory twin for the rules, Azurite for the
CLI and the doctor check."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from connector.app.cli.main import main
from connector.app.doctor.clusters import stopped_reporting
from connector.app.root.bootstrap import Container
from connector.core.processing import Processor
from connector.core.rollup import Rollup
from connector.core.tracking import ObjectRef, Observation, Phase
from connector.storage.clusters import REFRESH, ClusterRoster
from connector.storage.rows import key, spread_text
from connector.storage.tables import TableStore
from tests.fakes.memory_tables import MemoryTableService

T0 = datetime(2026, 5, 14, 9, 0, tzinfo=UTC)
ENV = "dev"
A, B = "a" * 40, "b" * 40
APPS = ObjectRef("Kustomization", "flux-system", "apps")


def obs(cluster: str, at: datetime, commit: str = A, phase: Phase = Phase.SUCCEEDED) -> Observation:
    return Observation(
        cluster=cluster,
        env=ENV,
        obj=APPS,
        commit=commit,
        phase=phase,
        reason="ReconciliationSucceeded",
        summary="",
        time=at,
        message_id=f"{cluster}-{at.isoformat()}-{commit}",
        is_source=False,
        received_at=at,
    )


WALL = [T0]  # the roster's clock: the time of the event being processed, as in production


def memory_store(window_days: float = 3) -> TableStore:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t", cluster_window_days=window_days)
    store.clusters._clock = lambda: WALL[0]
    return store


def process(store: TableStore, *observations: Observation) -> None:
    for one in observations:
        WALL[0] = one.time
        Processor({}, store, clock=lambda: WALL[0]).process(one)


def test_a_cluster_seen_once_stops_being_expected_after_the_window() -> None:
    store = memory_store()
    process(store, obs("dev-1", T0), obs("dev-typo", T0), obs("dev-2", T0))
    assert store.environment_clusters(ENV) == ["dev-1", "dev-2", "dev-typo"]

    # The real clusters deploy the next commit, days later: dev-typo never reports again.
    later = T0 + timedelta(days=2)
    process(store, obs("dev-1", later, B), obs("dev-2", later, B))
    assert "dev-typo" in store.environment_clusters(ENV)  # within 3 days: still expected
    rollup = Rollup({}, store).environment(B, ENV)
    assert rollup.phase == Phase.PROGRESSING  # held up by dev-typo

    past = T0 + timedelta(days=3, minutes=1)
    process(store, obs("dev-1", past, B), obs("dev-2", past + timedelta(hours=2), B))
    assert store.environment_clusters(ENV) == ["dev-1", "dev-2"]
    assert Rollup({}, store).environment(B, ENV).phase == Phase.SUCCEEDED


def test_a_gate_s_own_clusters_and_environments_are_not_expired() -> None:
    store = memory_store(window_days=1)
    process(store, obs("dev-1", T0), obs("dev-2", T0 + timedelta(days=5)))
    assert store.environment_clusters(ENV) == ["dev-2"]

    result = Rollup({}, store).environment(A, ENV, clusters=["dev-1", "dev-2"])
    assert [c.cluster for c in result.clusters] == ["dev-1", "dev-2"]


def test_a_report_rewrites_the_row_once_an_hour_per_process_without_a_read() -> None:
    wall = [T0]
    service = MemoryTableService()
    store = TableStore(service.as_sdk(), prefix="t")
    store.clusters = ClusterRoster(
        lambda: store.table("objects"), lambda env: {}, clock=lambda: wall[0]
    )
    table = store.table("objects")

    def last() -> str:
        return str(table.get_entity(key(ENV), key("cluster", "dev-1"))["last"])

    store.clusters.note(ENV, "dev-1", T0)
    assert last() == T0.isoformat()
    wall[0] = T0 + REFRESH - timedelta(seconds=1)
    store.clusters.note(ENV, "dev-1", T0 + timedelta(minutes=30))
    assert last() == T0.isoformat()  # within the hour: nothing written
    wall[0] = T0 + REFRESH
    store.clusters.note(ENV, "dev-1", T0 - timedelta(minutes=1))
    assert last() == T0.isoformat()  # never older than what this process wrote
    store.clusters.note(ENV, "dev-1", T0 + REFRESH)
    assert last() == (T0 + REFRESH).isoformat()


def test_forget_removes_a_cluster_until_it_reports_again() -> None:
    store = memory_store()
    process(store, obs("dev-1", T0), obs("dev-typo", T0))

    assert store.clusters.forget(ENV, "dev-typo")
    assert store.environment_clusters(ENV) == ["dev-1"]
    assert "dev-typo" not in store.cluster_objects(ENV)  # its pointers went too
    assert not store.clusters.forget(ENV, "dev-typo")

    process(store, obs("dev-typo", T0 + timedelta(hours=1), B))
    assert store.environment_clusters(ENV) == ["dev-1", "dev-typo"]


def test_a_list_written_before_reports_were_kept_counts_at_the_newest_pointer() -> None:
    store = memory_store(window_days=1)
    process(store, obs("dev-1", T0), obs("dev-old", T0 - timedelta(days=4)))
    objects = store.table("objects")
    for cluster in ("dev-1", "dev-old"):
        objects.delete_entity(key(ENV), key("cluster", cluster))
    legacy = spread_text("names", json.dumps(["dev-1", "dev-old"]))
    objects.create_entity({"PartitionKey": key(ENV), "RowKey": "clusters", **legacy})

    assert store.clusters.reports(ENV) == {"dev-1": T0, "dev-old": T0 - timedelta(days=4)}
    assert store.environment_clusters(ENV) == ["dev-1"]
    assert store.clusters.forget(ENV, "dev-old")
    assert list(store.clusters.reports(ENV)) == ["dev-1"]


def test_doctor_names_the_clusters_that_stopped_reporting() -> None:
    store = memory_store()
    process(store, obs("dev-1", T0), obs("dev-gone", T0 - timedelta(days=10)))
    container: Any = SimpleNamespace(store=store)

    check = stopped_reporting(container, now=T0 + timedelta(hours=1))
    assert not check.ok
    assert "1 cluster(s) stopped reporting: dev/dev-gone (last 2026-05-04 09:00Z)" in check.detail
    assert "--forget" in check.remedy

    store.clusters.forget(ENV, "dev-gone")
    assert stopped_reporting(container, now=T0 + timedelta(hours=1)).ok


@pytest.mark.azurite
def test_the_clusters_command_lists_and_forgets(azurite_connection, capsys) -> None:
    from connector.storage.rows import connect

    prefix = "roster" + uuid.uuid4().hex[:12]
    store = TableStore(connect(connection_string=azurite_connection), prefix=prefix)
    process(store, obs("dev-1", T0 + timedelta(days=5)), obs("dev-typo", T0))

    def run(*argv: str) -> tuple[int, str]:
        code = main(
            list(argv),
            environ={"SERVICEBUS_QUEUE": "flux-events"},
            make_container=lambda s: Container(s, store=store),
        )
        return code, capsys.readouterr().out

    code, out = run("clusters", "--env", ENV, "--json")
    assert code == 0
    assert json.loads(out) == [
        {"cluster": "dev-1", "lastReport": "2026-05-19T09:00:00+00:00", "expected": True},
        {"cluster": "dev-typo", "lastReport": "2026-05-14T09:00:00+00:00", "expected": False},
    ]
    code, out = run("clusters", "--env", ENV)
    assert code == 0
    assert "dev-typo" in out
    assert "no" in out.splitlines()[2].split()

    assert run("clusters", "--env", ENV, "--forget", "dev-typo") == (0, "forgotten\n")
    assert run("clusters", "--env", ENV, "--forget", "dev-typo") == (1, "not known\n")
    code, out = run("clusters", "--env", ENV, "--json")
    assert [r["cluster"] for r in json.loads(out)] == ["dev-1"]
