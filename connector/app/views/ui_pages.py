"""HTML of the on-call pages, from the views of `connector.app.views.ui_model`.

Every value is escaped (`html.escape`, quotes too); links are built from escaped parts and only
to `http(s)` addresses. A state is shown by colour, a symbol and its word, never colour alone;
states never wrap (`.st`), long names wrap only between words. The only script and style are
`connector.app.views.ui_assets`' (hashed in the CSP).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from connector.app.views.ui_assets import SCRIPT, STYLE
from connector.app.views.ui_model import NO_REPORT, hld_commit

Href = Callable[[str], str]  # an app path ("/api/ui/<sha>") → the link, with the caller's query

SYMBOLS = {
    "succeeded": "✓",
    "failed": "✗",
    "progressing": "↻",
    "waiting": "◔",
    "completing": "➜",
    "pending": "○",
    NO_REPORT: "○",
}


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


def state(phase: str, label: str | None = None) -> str:
    css = phase if phase in SYMBOLS and phase not in ("pending", NO_REPORT) else "none"
    return f'<span class="st {e(css)}">{SYMBOLS.get(phase, "·")} {e(label or phase)}</span>'


def short(commit: str) -> str:
    return commit[:7]


def sha(commit: str, href: Href, *, anchor: str = "") -> str:
    if not commit:
        return "—"
    ident = f' id="{e(anchor)}"' if anchor else ""
    return (
        f'<a class="sha"{ident} href="{e(href("/api/ui/" + commit))}" title="{e(commit)}">'
        f"{e(short(commit))}</a>"
    )


def external(url: str, text: str) -> str:
    if not url.startswith(("https://", "http://")):
        return ""
    return f'<a href="{e(url)}" rel="noopener noreferrer">{e(text)}</a>'


def when(iso: str) -> str:
    """An ISO time as `YYYY-MM-DD HH:MM:SSZ` in a `<time>` element."""
    if not iso:
        return "—"
    text = iso[:19].replace("T", " ") + "Z"
    return f'<time datetime="{e(iso)}">{e(text)}</time>'


def duration(seconds: int) -> str:
    """Whole minutes (rounded up): the page, and so its digest, changes once a minute."""
    if seconds <= 0:
        return "0 min"
    hours, minutes = divmod(-(-seconds // 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def page(
    title: str, main: str, *, digest: str, updated: str, refresh: int, href: Href, query: str
) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer"><link rel="icon" href="data:,">'
        f"<title>{e(title)}</title><style>{STYLE}</style></head>"
        f'<body data-refresh="{refresh}"><a class="skip" href="#main">Skip to content</a>'
        f'<header><h1><a href="{e(href("/api/ui"))}">GitOps deployments</a></h1>'
        f'<p class="updated" id="updated" role="status" aria-live="polite">Updated {e(updated)}</p>'
        f'<form method="get" action="/api/ui" role="search">{query}'
        '<label for="commit-search" class="skip">Commit (7 or more hex characters)</label>'
        '<input id="commit-search" name="commit" placeholder="commit SHA" autocomplete="off" '
        'pattern="[0-9a-fA-F]{7,40}" required><button type="submit">Open</button></form></header>'
        f'<main id="main" tabindex="-1" data-digest="{e(digest)}">{main}</main>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def table(caption: str, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Cells are HTML already escaped by the caller; each carries its header as `data-label`
    (the phone layout shows it before the value)."""
    body = "".join(
        "<tr>"
        + "".join(
            f'<td data-label="{e(h)}">{cell}</td>' for h, cell in zip(headers, row, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    if not body:
        return f"<p>{e(caption)}: none.</p>"
    head = "".join(f'<th scope="col">{e(h)}</th>' for h in headers)
    return (
        f"<table><caption>{e(caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


# --- the index -------------------------------------------------------------------------------


def index_main(view: Mapping[str, Any], href: Href) -> str:
    gates = view["gates"]
    parts = ['<section aria-labelledby="gates-h"><h2 id="gates-h">Open gates</h2>']
    parts += [_gate_card(g, href) for g in gates] or ["<p>No gate is waiting.</p>"]
    parts.append("</section>")
    for env in view["environments"]:
        parts.append(_environment(env, href))
    return "".join(parts)


def _gate_card(gate: Mapping[str, Any], href: Href) -> str:
    failing = any(w.get("failed") for w in gate["waiting"])
    css = "failed" if failing else gate["state"]
    items = (
        "".join(f"<li><b>{e(w['cluster'])}</b>: {e(w['why'])}</li>" for w in gate["waiting"])
        or "<li>every cluster is healthy on the commit; completing</li>"
    )
    pr = f", PR {e(gate['pull_request_id'])}" if gate["pull_request_id"] is not None else ""
    return (
        f'<article class="card {e(css)}" aria-label="Gate {e(gate["environment"])}">'
        f"<p>{state(gate['state'])} <b>{e(gate['environment'])}</b> on "
        f"{sha(gate['commit'], href, anchor='gate-' + gate['id'])}{pr}; deadline "
        f"{when(gate['deadline'])} (in {duration(gate['deadline_left_seconds'])})</p>"
        f"<p>Waits for:</p><ul>{items}</ul></article>"
    )


def _environment(env: Mapping[str, Any], href: Href) -> str:
    name = env["name"]
    ident = "env-" + "".join(c if c.isalnum() else "-" for c in name)
    counts = ", ".join(f"{n} {p}" for p, n in env["counts"].items()) or "no cluster yet"
    tiles = "".join(_tile(c, href) for c in env["clusters"])
    rows = [
        [
            f"<b>{e(c['cluster'])}</b>",
            state(c["phase"]),
            sha(c["commit"], href),
            when(c["since"]),
            _cluster_detail(c, href),
        ]
        for c in env["clusters"]
        if c["phase"] != "succeeded"
    ]
    commits = [
        [sha(c["commit"], href), state(c["phase"]), when(c["since"]), when(c["changed"])]
        for c in env["commits"]
    ]
    return (
        f'<section aria-labelledby="{e(ident)}"><h2 id="{e(ident)}">{e(name)} '
        f'<span class="counts">({e(counts)})</span></h2>'
        f'<ul class="grid" aria-label="Clusters of {e(name)}">{tiles}</ul>'
        + table(
            f"{name}: clusters not healthy",
            ("Cluster", "State", "Runs", "Since", "Detail"),
            rows,
        )
        + table(f"{name}: recent commits", ("Commit", "Result", "First seen", "Changed"), commits)
        + "</section>"
    )


def _tile(c: Mapping[str, Any], href: Href) -> str:
    label = f"{c['cluster']}: {c['phase']}" + (f" on {short(c['commit'])}" if c["commit"] else "")
    since = f" since {when(c['since'])}" if c["since"] else ""
    return (
        f'<li class="tile {e(c["phase"] if c["phase"] != NO_REPORT else "none")}" '
        f'aria-label="{e(label)}"><b>{e(c["cluster"])}</b>{state(c["phase"])} '
        f"{sha(c['commit'], href)}<small>{since}</small></li>"
    )


def _cluster_detail(c: Mapping[str, Any], href: Href) -> str:
    parts = []
    if "failed" in c:
        f = c["failed"]
        parts.append(f"<b>{e(f['object'])}</b>: {e(f['reason'])}: {e(f['message'])}")
    if c.get("pending"):
        parts.append("waiting for " + e(", ".join(c["pending"])))
        if c.get("previous"):
            parts.append(f"(not yet moved from {sha(c['previous'], href)})")
    if c["phase"] == NO_REPORT:
        parts.append("expected (ENVIRONMENTS) but no report yet")
    return f'<span class="msg">{" ".join(parts)}</span>'


# --- a commit ----------------------------------------------------------------------------------


def commit_main(view: Mapping[str, Any], href: Href) -> str:
    commit = view["commit"]
    link = external(view["links"]["commit"], "in Azure Repos")
    hld = hld_commit(view)
    parts = [
        f"<h2>Commit <code>{e(commit)}</code> {link}</h2>",
        f"<p>HLD commit: <code>{e(hld)}</code></p>" if hld else "",
        '<section aria-labelledby="gates-h"><h2 id="gates-h">Gates</h2>',
        "".join(_gate_detail(g, href) for g in view["gates"]) or "<p>No gate waits on it.</p>",
        "</section>",
    ]
    order = {"failed": 0, "progressing": 1}  # what needs attention first
    for name, env in sorted(
        view["environments"].items(), key=lambda i: order.get(i[1]["phase"], 2)
    ):
        parts.append(_commit_environment(name, env, href))
    statuses = [
        [
            f"<code>{e(n)}</code>",
            state(s["state"]),
            e(s["description"]),
            "yes" if s["confirmed"] else "no",
        ]
        for n, s in view["statuses"].items()
    ]
    parts.append("<section><h2>Commit statuses posted</h2>")
    parts.append(
        table("Commit statuses", ("Context", "State", "Description", "Confirmed"), statuses)
    )
    parts.append("</section>")
    return "".join(parts)


def _gate_detail(g: Mapping[str, Any], href: Href) -> str:
    links = g["links"]
    found = [
        external(links["run"], "pipeline run (stage job)"),
        external(links["plan"], f"pipeline plan {g['plan']['plan_id'][:8]} ({g['plan']['hub']})"),
        external(links["pull_request"], f"pull request {g['pull_request_id']}"),
    ]
    link_list = " · ".join(x for x in found if x) or "no Azure DevOps link known"
    waits = g["waits"]
    css = "failed" if waits and waits["failure"] else g["state"]
    head = (
        f'<article class="card {e(css)}" aria-label="Gate {e(g["environment"])}">'
        f"<p>{state(g['state'])} <b>{e(g['environment'])}</b>; deadline {when(g['deadline'])}"
        + (f" (in {duration(g['deadline_left_seconds'])})" if g["open"] else "")
        + f"</p><p>{link_list}</p>"
    )
    if not g["open"]:
        return head + f"<p>{e(g['result'])}: {e(g['reason'])}</p></article>"
    if waits is None:
        return head + "<p>Waiting for its pull request to merge.</p></article>"
    body = ""
    failure = waits["failure"]
    if failure:
        body += (
            f"<p>{state('failed')} {e(failure['cluster'])}: <b>{e(failure['object'])}</b>: "
            f"{e(failure['reason'])}: {e(failure['message'])}; the gate fails in "
            f"{duration(failure['grace_left_seconds'])} unless it recovers (grace)</p>"
        )
    rows = [[e(c["cluster"]), state(c["phase"]), _waits_for(c, href)] for c in waits["clusters"]]
    body += table("Still pending", ("Cluster", "State", "Objects pending"), rows)
    if waits["done"]:
        body += f"<p>Healthy: {e(', '.join(waits['done']))}</p>"
    return head + body + "</article>"


def _waits_for(c: Mapping[str, Any], href: Href) -> str:
    if "failed" in c:
        f = c["failed"]
        return f"<b>{e(f['object'])}</b>: {e(f['reason'])}"
    if c["objects"]:
        return e(", ".join(c["objects"]))
    return "a report of this commit" + _runs(c.get("runs_now"), href)


def _runs(now: Mapping[str, Any] | None, href: Href) -> str:
    if not now:
        return ""
    return f"; runs {sha(now['commit'], href)} ({state(now['phase'])}) since {when(now['since'])}"


def _commit_environment(name: str, env: Mapping[str, Any], href: Href) -> str:
    rows = []
    for cluster, detail in env["clusters"].items():
        runs = _runs(detail.get("runs_now"), href)
        if not detail["objects"]:
            rows.append([e(cluster), "—", state(detail["phase"]), "", "no report" + runs, "—"])
        for obj, s in detail["objects"].items():
            rows.append(
                [
                    e(cluster),
                    f"<code>{e(obj)}</code>",
                    state(s["phase"]),
                    e(s["reason"]),
                    f'<span class="msg">{e(s["summary"])}</span> {runs}',
                    when(s["time"] or ""),
                ]
            )
    return (
        f"<section><h2>{e(name)} {state(env['phase'])}</h2>"
        + table(
            f"{name}: objects", ("Cluster", "Object", "State", "Reason", "Message", "Time"), rows
        )
        + "</section>"
    )


def message_page(title: str, text: str, choices: Sequence[str], href: Href) -> str:
    items = "".join(f"<li>{sha(c, href)} <code>{e(c)}</code></li>" for c in choices)
    listing = f"<ul>{items}</ul>" if items else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>"
        f'<main id="main"><h1>{e(title)}</h1><p>{e(text)}</p>{listing}'
        f'<p><a href="{e(href("/api/ui"))}">All environments</a></p></main></body></html>\n'
    )
