"""The deployments view of a commit (`connector.app.views.deployments_model`) as a small
server-rendered page: escaped text in three tables, no scripts, no external resources."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

from connector.app.views.deployments_model import View

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
