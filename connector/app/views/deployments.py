"""One commit's deployment, as operators see it: per environment, cluster and object, the commit
statuses posted for it and the gates waiting on it. Read-only; built from the state store.

The same view backs `python -m connector status <commit>` and `GET /api/deployments/{commit}`
(JSON, or a small server-rendered HTML page with `?format=html` or `Accept: text/html`).
Environment and cluster phases are the roll-up the gates use (exact commit, no descendants);
objects an environment expects but that have not reported the commit are listed as `pending`.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from azure.core.exceptions import AzureError

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
from connector.settings import SettingsError
from connector.storage.ledger import StatusRecord
from connector.storage.tables import TableStore
from connector.web import Reply, Request

logger = logging.getLogger(__name__)

View = dict[str, Any]
ObjectStates = dict[tuple[str, str], dict[ObjectRef, ObjectState]]

_COMMIT = re.compile(r"[0-9a-fA-F]{40}")
PENDING = "pending"
_PENDING_OBJECT = {
    "phase": PENDING,
    "reason": "",
    "summary": "no report of this commit yet",
    "time": None,
}


class InvalidCommitError(ConnectorError, ValueError):
    """The commit is not a full SHA-1 (40 hexadecimal characters)."""


class UnknownCommitError(ConnectorError, LookupError):
    """Nothing is recorded for the commit: no object state, commit status or gate."""


def parse_commit(text: str) -> str:
    """A full commit id, lower-cased as Flux reports it; else InvalidCommitError."""
    if not _COMMIT.fullmatch(text):
        raise InvalidCommitError("must be 40 hexadecimal characters (a full SHA-1)")
    return text.lower()


# --- the view ------------------------------------------------------------------------------------


def deployment_view(
    store: TableStore, environments: EnvironmentSpecs, commit: str, gates: list[Gate] | None = None
) -> View:
    """The JSON-ready view of a commit; UnknownCommitError when nothing concerns it. `gates`:
    the commit's gates when the caller has read them already."""
    commit = parse_commit(commit)
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


# --- rendering -----------------------------------------------------------------------------------


def render_json(view: View) -> str:
    return json.dumps(view, indent=2)


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}"
    "table{border-collapse:collapse;margin-bottom:1.5rem}"
    "th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}"
    "td{overflow-wrap:anywhere;max-width:40rem}"
    "th{background:#f3f3f3}code{font-size:.95em}"
    ".succeeded{color:#176f2c}.failed{color:#b3261e;font-weight:bold}"
    ".progressing,.pending,.waiting,.completing{color:#8a5a00}"
)


def render_html(view: View) -> str:
    """A read-only page: escaped text in three tables, no scripts, no external resources."""
    commit = _e(view["commit"])
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Deployment {commit[:12]}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Commit <code>{commit}</code></h1>"
        + _link_html(view.get("link"))
        + "<h2>Environments</h2>"
        + _table(
            ("Environment", "Cluster", "Object", "Phase", "Reason", "Time", "Summary"),
            _deployment_rows(view["environments"]),
            phase_column=3,
        )
        + "<h2>Commit statuses</h2>"
        + _table(("Context", "State", "Confirmed", "Description"), _status_rows(view["statuses"]))
        + "<h2>Gates</h2>"
        + _table(
            ("Environment", "State", "Result", "Reason", "Pull request", "Created", "Deadline"),
            _gate_rows(view["gates"]),
            phase_column=1,
        )
        + "</body></html>\n"
    )


def _link_html(link: Mapping[str, Any] | None) -> str:
    if not link:
        return ""
    if link["hld_commits"]:
        shas = ", ".join(f"<code>{_e(c)}</code>" for c in link["hld_commits"])
        return f"<p>Rendered from HLD {shas} (found by {_e(link['via'])}).</p>"
    return f"<p><strong>Not linked to an HLD commit:</strong> {_e(link['problem'])}</p>"


def _deployment_rows(environments: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for env, environment in environments.items():
        rows.append([env, "", "", environment["phase"], "", "", ""])
        for cluster, detail in environment["clusters"].items():
            rows.append([env, cluster, "", detail["phase"], "", "", ""])
            for name, obj in detail["objects"].items():
                time = obj["time"] or ""
                rows.append([env, cluster, name, obj["phase"], obj["reason"], time, obj["summary"]])
    return rows


def _status_rows(statuses: Mapping[str, Any]) -> list[list[str]]:
    return [
        [name, s["state"], "yes" if s["confirmed"] else "no", s["description"]]
        for name, s in statuses.items()
    ]


def _gate_rows(gates: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    return [
        [
            g["environment"],
            g["state"],
            g["result"],
            g["reason"],
            str(g["pull_request_id"] or ""),
            g["created_at"],
            g["deadline"],
        ]
        for g in gates
    ]


def _table(headers: Iterable[str], rows: list[list[str]], phase_column: int | None = None) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(_row(row, phase_column) for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _row(cells: list[str], phase_column: int | None) -> str:
    parts = []
    for i, cell in enumerate(cells):
        attr = f' class="{_e(cell)}"' if i == phase_column and cell else ""
        parts.append(f"<td{attr}>{_e(cell)}</td>")
    return "<tr>" + "".join(parts) + "</tr>"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


# --- HTTP ----------------------------------------------------------------------------------------

_HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Vary": "Accept",
}


class DeploymentsView:
    """`GET /api/deployments/{commit}`: 200 with the view, 400 naming a bad parameter, 404 for an
    unknown commit, 503 when the state store is not configured or not reachable."""

    def __init__(self, store: Callable[[], TableStore], environments: EnvironmentSpecs) -> None:
        self._store = store
        self._environments = environments

    def handle(self, request: Request) -> Reply:
        if request.method.upper() not in ("GET", "HEAD"):
            return _error(405, "method not allowed: use GET")
        try:
            commit = parse_commit(request.route.get("commit", ""))
        except InvalidCommitError as exc:
            return _error(400, f"invalid commit: {exc}", field="commit", problem=str(exc))
        fmt = _format(request)
        if fmt is None:
            problem = "use json or html"
            return _error(400, f"invalid format: {problem}", field="format", problem=problem)
        return self._respond(commit, fmt)

    def _respond(self, commit: str, fmt: str) -> Reply:
        try:
            view = deployment_view(self._store(), self._environments, commit)
        except SettingsError as exc:
            logger.error("config.invalid", extra={"error": str(exc)})  # noqa: TRY400
            return _error(503, str(exc), retry_after="30")
        except UnknownCommitError:
            error = "unknown commit: no object state, commit status or gate is recorded for it"
            return Reply(404, {"error": error, "commit": commit})
        except AzureError as exc:
            logger.warning("deployments.store_unavailable", extra={"error": type(exc).__name__})
            return _error(503, "state store unavailable, retry later", retry_after="5")
        if fmt == "html":
            return Reply(200, render_html(view), dict(_HTML_HEADERS), content_type="text/html")
        return Reply(200, render_json(view), {"Vary": "Accept"})


def _format(request: Request) -> str | None:
    """`?format=` wins; else HTML when the client accepts it (a browser), else JSON."""
    asked = request.params.get("format")
    if asked is not None:
        lowered = asked.lower()
        return lowered if lowered in ("json", "html") else None
    accept = request.headers.get("accept") or ""
    return "html" if "text/html" in accept.lower() else "json"


def _error(
    status: int,
    error: str,
    *,
    field: str | None = None,
    problem: str = "",
    retry_after: str | None = None,
) -> Reply:
    body: dict[str, Any] = {"error": error}
    if field is not None:
        body["fields"] = [{"field": field, "problem": problem}]
    headers = {"Retry-After": retry_after} if retry_after else {}
    return Reply(status, body, headers)
