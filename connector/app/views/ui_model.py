"""What the on-call pages show, as JSON-ready views (rendered by `connector.app.views.ui_pages`).

- The index (`index_view`): every environment's clusters as the board says (the commit each runs
  now, since when, its state), the environment's recent commits, and the open gates first. Its
  reads are bounded whatever the fleet: one query of the board's partition, one of the open
  gates (`connector.storage.board`).
- A commit (`commit_view`): the deployments view of the commit
  (`connector.app.views.deployments_model`, the same queries), each gate with what it still
  waits for (the gate's own roll-up and rules), links into Azure DevOps, and what the clusters
  not on the commit run now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from connector.app.views.deployments_model import View, commit_gates, deployment_view
from connector.core.gates import OPEN, Gate, decide
from connector.core.rollup import EnvironmentSpecs, Rollup
from connector.core.tracking import ClusterResult, Phase
from connector.outputs.spektate_rows import repository_url
from connector.storage.board import Board, ClusterNow
from connector.storage.tables import TableStore

NO_REPORT = "no report"  # an expected cluster that has not reported any commit yet
_ORDER = {"failed": 0, "progressing": 1, NO_REPORT: 2, "succeeded": 3}


@dataclass(frozen=True)
class Links:
    """Where the pages link into Azure DevOps (`AZDO_ORG_URL`, `AZDO_PROJECT`, repositories)."""

    org_url: str
    project: str
    gitops_repo: str
    pr_repo: str

    def commit(self, commit: str) -> str:
        base = repository_url(self.org_url, self.project, self.gitops_repo)
        return f"{base}/commit/{quote(commit, safe='')}" if base else ""

    def pull_request(self, repository: str, number: int | None) -> str:
        base = repository_url(self.org_url, self.project, repository or self.pr_repo)
        return f"{base}/pullrequest/{number}" if base and number is not None else ""

    def plan(self, gate: Gate) -> str:
        """The waiting job's orchestration plan (Azure DevOps answers it with the run it belongs
        to: `owner._links`), only under the configured organisation."""
        p = gate.plan
        if not (self.org_url and p.plan_url.startswith(self.org_url.rstrip("/") + "/")):
            return ""
        project, hub, plan = (quote(x, safe="") for x in (p.project_id, p.hub_name, p.plan_id))
        return f"{p.plan_url}{project}/_apis/distributedtask/hubs/{hub}/plans/{plan}"

    def run(self, project_id: str, build_id: int | None, job_id: str = "") -> str:
        """A pipeline run (and its job, the gate's stage) when the build id is known."""
        if build_id is None or not self.org_url:
            return ""
        project = quote(project_id, safe="")
        url = f"{self.org_url.rstrip('/')}/{project}/_build/results?buildId={build_id}"
        return url + (f"&view=logs&j={quote(job_id, safe='')}" if job_id else "")


# --- the index -------------------------------------------------------------------------------


def index_view(
    boards: Iterable[Board],
    open_gates: Sequence[Gate],
    environments: EnvironmentSpecs,
    now: datetime,
) -> View:
    by_env = {b.env: b for b in boards}
    names = [*environments, *sorted(set(by_env) - set(environments))]
    names += sorted({g.environment for g in open_gates} - set(names))
    return {
        "generated_at": now.isoformat(),
        "gates": [
            _gate_at_a_glance(g, by_env.get(g.environment), environments, now)
            for g in sorted(open_gates, key=lambda g: (g.deadline, g.environment, g.id))
        ],
        "environments": [_environment(n, by_env.get(n), environments) for n in names],
    }


def _environment(name: str, board: Board | None, environments: EnvironmentSpecs) -> View:
    spec = environments.get(name)
    known = board.clusters if board else {}
    expected = list(spec.clusters) if spec else []
    clusters = [_cluster_now(c, known.get(c)) for c in sorted(set(expected) | set(known))]
    clusters.sort(key=lambda c: (_ORDER.get(c["phase"], 9), c["cluster"]))
    counts: dict[str, int] = {}
    for c in clusters:
        counts[c["phase"]] = counts.get(c["phase"], 0) + 1
    commits = [
        {"commit": c.commit, "phase": c.phase, "since": c.since, "changed": c.changed}
        for c in (board.commits if board else ())
    ]
    return {"name": name, "counts": counts, "clusters": clusters, "commits": commits}


def _cluster_now(name: str, now: ClusterNow | None) -> View:
    if now is None:
        return {"cluster": name, "phase": NO_REPORT, "commit": "", "since": "", "changed": ""}
    view: View = {
        "cluster": name,
        "phase": now.phase,
        "commit": now.commit,
        "since": now.since,
        "changed": now.changed,
        "previous": now.previous,
        "pending": list(now.pending),
    }
    if now.failed:
        obj, reason, *message = now.failed
        view["failed"] = {"object": obj, "reason": reason, "message": "".join(message)}
    return view


def _gate_at_a_glance(
    gate: Gate, board: Board | None, environments: EnvironmentSpecs, now: datetime
) -> View:
    """A gate as the index can judge it from the board (the gate's commit only, no
    descendants): which clusters are not healthy on its commit yet, and why."""
    view = gate_view(gate, now)
    spec = environments.get(gate.environment)
    known = board.clusters if board else {}
    expected = list(gate.clusters) or (list(spec.clusters) if spec else []) or sorted(known)
    waiting: list[dict[str, Any]] = []
    for name in expected:
        entry = known.get(name)
        if entry is None:
            waiting.append({"cluster": name, "why": "no report yet"})
        elif gate.commit and entry.commit != gate.commit:
            waiting.append(
                {"cluster": name, "why": f"runs {entry.commit[:7]}", "runs": entry.commit}
            )
        elif entry.phase == Phase.FAILED.value:
            obj, reason, *_ = entry.failed or ("", "failed")
            waiting.append({"cluster": name, "why": f"FAILED {obj}: {reason}", "failed": True})
        elif entry.phase != Phase.SUCCEEDED.value:
            pending = ", ".join(entry.pending) or "its objects"
            waiting.append({"cluster": name, "why": f"waiting for {pending}"})
    view["waiting"] = waiting
    return view


def gate_view(gate: Gate, now: datetime) -> View:
    return {
        "id": gate.id,
        "environment": gate.environment,
        "state": gate.state.value,
        "open": gate.state in OPEN,
        "result": gate.result,
        "reason": gate.result_reason,
        "commit": gate.commit or "",
        "pull_request_id": gate.pull_request_id,
        "repository": gate.repository,
        "created_at": gate.created_at.isoformat(),
        "deadline": gate.deadline.isoformat(),
        "deadline_left_seconds": max(0, int((gate.deadline - now).total_seconds())),
        "trial": gate.trial,
    }


# --- a commit ----------------------------------------------------------------------------------


def commit_view(
    store: TableStore,
    environments: EnvironmentSpecs,
    commit: str,
    *,
    links: Links,
    grace: timedelta,
    boards: Iterable[Board],
    now: datetime,
) -> View:
    """The deployments view of `commit`, with each gate's wait, links and what runs now."""
    gates = commit_gates(store, commit)
    view = deployment_view(store, environments, commit, gates)
    rollup = Rollup(environments, store)
    view["gates"] = [
        _gate_detail(g, rollup, links, grace, now)
        for g in sorted(gates, key=lambda g: (g.state not in OPEN, g.environment, g.id))
    ]
    view["links"] = {"commit": links.commit(commit)}
    view["generated_at"] = now.isoformat()
    link = view.get("link") or {}
    view["hld_commit"] = next(iter(link.get("hld_commits") or ()), None)  # the verified link
    by_env = {b.env: b for b in boards}
    for env, environment in view["environments"].items():
        _runs_now(environment["clusters"], by_env.get(env), commit)
    for gate in view["gates"]:
        if gate["waits"] is not None:
            clusters = {c["cluster"]: c for c in gate["waits"]["clusters"]}
            _runs_now(clusters, by_env.get(gate["environment"]), commit)
    return view


def _runs_now(clusters: Mapping[str, View], board: Board | None, commit: str) -> None:
    """Each cluster's commit now, when it is not this one (it has not reached it yet, or has
    moved on)."""
    for name, cluster in clusters.items():
        entry = board.clusters.get(name) if board else None
        if entry is not None and entry.commit != commit:
            cluster["runs_now"] = {
                "commit": entry.commit,
                "phase": entry.phase,
                "since": entry.since,
            }


def _gate_detail(gate: Gate, rollup: Rollup, links: Links, grace: timedelta, now: datetime) -> View:
    view = gate_view(gate, now)
    view["links"] = {
        "plan": links.plan(gate),
        "run": links.run(gate.plan.project_id, _build_id(gate), gate.plan.job_id),
        "pull_request": links.pull_request(gate.repository, gate.pull_request_id),
        "commit": links.commit(gate.commit) if gate.commit else "",
    }
    view["plan"] = {
        "hub": gate.plan.hub_name,
        "plan_id": gate.plan.plan_id,
        "job_id": gate.plan.job_id,
    }
    if gate.state not in OPEN or not gate.commit:
        view["waits"] = None
        return view
    result = rollup.environment(
        gate.commit, gate.environment, clusters=gate.clusters, objects=gate.objects
    )
    decision = decide(gate, result, gate.commit, now, grace)
    view["waits"] = {
        "phase": result.phase.value,
        "clusters": [_pending(c) for c in result.clusters if c.phase != Phase.SUCCEEDED],
        "done": [c.cluster for c in result.clusters if c.phase == Phase.SUCCEEDED],
        "failure": _failure(result.failed_cluster, decision.recheck_at, now),
        "lines": list(decision.lines),
    }
    return view


def _build_id(gate: Gate) -> int | None:
    """The run's build id, when the gate records one (registration does not yet)."""
    value = getattr(gate, "build_id", None)
    return value if isinstance(value, int) else None


def _pending(result: ClusterResult) -> View:
    view: View = {
        "cluster": result.cluster,
        "phase": result.phase.value,
        "objects": [str(o) for o in result.pending],
    }
    if result.failed:
        obj, state = result.failed[0]
        view["failed"] = {"object": str(obj), "reason": state.reason, "message": state.summary}
    return view


def _failure(failed: ClusterResult | None, recheck: datetime | None, now: datetime) -> Any:
    if failed is None:
        return None
    obj, state = failed.failed[0]
    left = max(0, int((recheck - now).total_seconds())) if recheck is not None else 0
    return {
        "cluster": failed.cluster,
        "object": str(obj),
        "reason": state.reason,
        "message": state.summary,
        "since": (state.failure_noticed or state.failed_since or state.time).isoformat(),
        "grace_left_seconds": left,
    }


def hld_commit(view: Mapping[str, Any]) -> str | None:
    value = view.get("hld_commit")
    return value if isinstance(value, str) and value else None
