"""One commit's deployment, as operators see it: per environment, cluster and object, the commit
statuses posted for it and the gates waiting on it. Read-only; built from the state store.

The same view backs `python -m connector status <commit>`, `GET /api/deployments/{commit}`
(`connector.app.views.deployments`; its HTML page: `connector.app.views.deployments_page`) and
the on-call pages' commit view (`connector.app.views.ui_model`). Environment and cluster phases
are the roll-up the gates use (exact commit, no descendants); objects an environment expects but
that have not reported the commit are listed as `pending`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connector.app.views import commits
from connector.core.errors import ConnectorError
from connector.core.gates import Gate
from connector.core.links import Link
from connector.core.rollup import EnvironmentSpecs, Rollup
from connector.core.tracking import (
    ClusterResult,
    EnvironmentResult,
    ObjectRef,
    ObjectState,
    cluster_result,
)
from connector.gates.store import GateStore
from connector.storage.ledger import StatusRecord
from connector.storage.tables import TableStore

View = dict[str, Any]
ObjectStates = dict[tuple[str, str], dict[ObjectRef, ObjectState]]

PENDING = "pending"
_PENDING_OBJECT = {
    "phase": PENDING,
    "reason": "",
    "summary": "no report of this commit yet",
    "time": None,
}


class UnknownCommitError(ConnectorError, LookupError):
    """Nothing is recorded for the commit: no object state, commit status or gate."""


def deployment_view(
    store: TableStore, environments: EnvironmentSpecs, commit: str, gates: list[Gate] | None = None
) -> View:
    """The JSON-ready view of a commit; UnknownCommitError when nothing concerns it. `gates`:
    the commit's gates when the caller has read them already."""
    commit = commits.parse(commit, shortest=commits.FULL)
    states = store.commit_states(commit)
    statuses = store.status_records(commit)
    gate_store = GateStore(store)
    if gates is None:
        gates = commit_gates(store, commit)
    if not (states or statuses or gates):
        raise UnknownCommitError(commit)
    rollup = Rollup(environments, store)
    envs = sorted({env for env, _ in states} | {g.environment for g in gates})
    return {
        "commit": commit,
        "environments": {
            env: _environment(rollup.environment(commit, env), states) for env in envs
        },
        "statuses": {name: status_summary(r) for name, r in sorted(statuses.items())},
        "gates": [gate_summary(g) for g in sorted(gates, key=_gate_order)],
        "link": _link(gate_store.fact("link", commit)),
    }


def _link(known: Any) -> View | None:
    """What the manifests commit was verified to carry of the HLD repository (three
    repositories), once a gate or a status asked: HLD commits, how found, what is missing."""
    if known is None:
        return None
    link = Link.from_json(known)
    return {"hld_commits": list(link.hld_commits), "via": link.via, "problem": link.problem}


def commit_gates(store: TableStore, commit: str) -> list[Gate]:
    """The gates waiting for the commit: as its manifests commit, or as their HLD commit."""
    return [g for g in GateStore(store).all_gates() if commit in {g.commit, g.hld_commit}]


def _environment(result: EnvironmentResult, states: ObjectStates) -> View:
    """The environment's phase counts only the clusters it expects; a stray cluster reporting the
    commit is shown, but cannot make the environment fail or succeed."""
    expected = {c.cluster: c for c in result.clusters}
    seen = {cluster: found for (env, cluster), found in states.items() if env == result.env}
    clusters = {
        name: _cluster(expected.get(name), seen.get(name, {}), name)
        for name in sorted(set(expected) | set(seen))
    }
    return {"phase": result.phase.value, "clusters": clusters}


def _cluster(
    result: ClusterResult | None, states: Mapping[ObjectRef, ObjectState], name: str
) -> View:
    if result is None:  # a cluster the environment does not expect: judged on what it reported
        deployed = {o: s for o, s in states.items() if not s.is_source}
        result = cluster_result(name, deployed, deployed)
    objects: dict[str, Any] = {str(o): object_summary(s) for o, s in states.items()}
    for obj in result.pending:
        objects.setdefault(str(obj), dict(_PENDING_OBJECT))
    return {"phase": result.phase.value, "objects": dict(sorted(objects.items()))}


def object_summary(state: ObjectState) -> View:
    return {
        "phase": state.phase.value,
        "reason": state.reason,
        "summary": state.summary,
        "time": state.time.isoformat(),
    }


def status_summary(record: StatusRecord) -> View:
    return {
        "state": record.state,
        "description": record.description,
        "claimed_at": record.claimed_at.isoformat(),
        "confirmed": record.confirmed,
        "trial": record.trial,
    }


def gate_summary(gate: Gate) -> View:
    """What an operator needs about a gate (no plan or job identifiers beyond the gate id)."""
    return {
        "id": gate.id,
        "environment": gate.environment,
        "state": gate.state.value,
        "result": gate.result,
        "reason": gate.result_reason,
        "commit": gate.commit,
        "hld_commit": gate.hld_commit,
        "link_problem": gate.link_problem,
        "pull_request_id": gate.pull_request_id,
        "repository": gate.repository,
        "clusters": list(gate.clusters),
        "objects": list(gate.objects),
        "created_at": gate.created_at.isoformat(),
        "deadline": gate.deadline.isoformat(),
        "source": gate.source,
        "trial": gate.trial,
    }


def _gate_order(gate: Gate) -> tuple[str, str, str]:
    return gate.environment, gate.created_at.isoformat(), gate.id


def render_json(view: View) -> str:
    return json.dumps(view, indent=2)
