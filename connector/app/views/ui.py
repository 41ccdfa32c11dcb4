"""`GET /api/ui` and `GET /api/ui/{commit}`: the on-call pages (read-only).

Formats (`?format=`): `html` (the default), `json` (the view, for scripts) and `fragment` (what
the page's own script polls: a digest, the time, the HTML of `<main>`). A commit is a full SHA or
a unique prefix of at least 7 hex characters; an ambiguous one is a 409 listing the candidates, an
unknown one a 404; `?commit=` on the index (its search box) redirects to the commit's page.
Links keep the caller's `code` (a function key in the address), and the pages send no Referer.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from azure.core.exceptions import AzureError

from connector.app.views import commits, ui_pages
from connector.app.views.deployments_model import UnknownCommitError
from connector.app.views.ui_assets import HEADERS
from connector.app.views.ui_model import Links, commit_view, index_view
from connector.gates.store import GateStore
from connector.settings import Settings, SettingsError
from connector.storage.tables import TableStore
from connector.web import Reply, Request

logger = logging.getLogger(__name__)

MIN_PREFIX = 7  # the short SHA Azure Repos and `git log --oneline` show
FORMATS = ("html", "json", "fragment")
DEFAULT_REFRESH = 15  # seconds between the page's polls
REFRESH_RANGE = (1, 300)


class UiPages:
    def __init__(
        self,
        store: Callable[[], TableStore],
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    def handle(self, request: Request) -> Reply:
        if request.method.upper() not in ("GET", "HEAD"):
            return _problem(405, "method not allowed: use GET", "method", html=False)
        fmt = (request.params.get("format") or "html").lower()
        if fmt not in FORMATS:
            return _problem(400, "invalid format: use html, json or fragment", "format", html=False)
        refresh = _refresh(request.params.get("refresh"))
        if refresh is None:
            low, high = REFRESH_RANGE
            problem = f"invalid refresh: seconds from {low} to {high}"
            return _problem(400, problem, "refresh", html=fmt == "html")
        try:
            return self._answer(_Ask(request, fmt, refresh, _linker(request.params)))
        except SettingsError as exc:
            logger.error("config.invalid", extra={"error": str(exc)})  # noqa: TRY400
            return Reply(503, {"error": str(exc)}, {"Retry-After": "30"})
        except AzureError as exc:
            logger.warning("ui.store_unavailable", extra={"error": type(exc).__name__})
            return Reply(
                503, {"error": "state store unavailable, retry later"}, {"Retry-After": "5"}
            )

    def _answer(self, ask: _Ask) -> Reply:
        store = self._store()
        asked = ask.request.route.get("commit") or ""
        searched = ask.request.params.get("commit")
        if not asked and searched is None:
            view = self._index(store)
            return _reply(ask, view, "All environments", ui_pages.index_main(view, ask.href))
        try:
            commit = _resolve(store, asked or searched or "")
        except ValueError as exc:
            return ask.problem(400, f"invalid commit: {exc}")
        except commits.AmbiguousCommitError:
            return self._choice(store, asked or searched or "", ask)
        except commits.CommitLookupError as exc:
            return ask.problem(404, str(exc))
        if not asked:  # the search box: the commit's own page, whose address can be shared
            location = ask.href("/api/ui/" + commit)
            return Reply(303, "", {"Location": location}, content_type="text/plain")
        return self._commit_page(store, commit, ask)

    def _commit_page(self, store: TableStore, commit: str, ask: _Ask) -> Reply:
        try:
            view = self._commit(store, commit)
        except UnknownCommitError:
            return ask.problem(404, "unknown commit: no state, commit status or gate names it")
        return _reply(ask, view, f"Commit {commit[:7]}", ui_pages.commit_main(view, ask.href))

    def _index(self, store: TableStore) -> dict[str, Any]:
        boards = store.board().boards()
        gates = GateStore(store).open_gates()
        return index_view(boards, gates, self._settings.environments, self._clock())

    def _commit(self, store: TableStore, commit: str) -> dict[str, Any]:
        s = self._settings
        return commit_view(
            store,
            s.environments,
            commit,
            links=Links(s.azdo_org_url, s.azdo_project, s.azdo_gitops_repo, s.pr_repo),
            grace=timedelta(seconds=s.gate_failure_grace_seconds),
            boards=store.board().boards(),
            now=self._clock(),
        )

    def _choice(self, store: TableStore, text: str, ask: _Ask) -> Reply:
        found = commits.matches(store, text.strip().lower())
        error = f"{text} is ambiguous: {len(found)} commits start with it; give more characters"
        if ask.fmt != "html":
            return Reply(
                409,
                {
                    "error": error,
                    "fields": [{"field": "commit", "problem": error}],
                    "candidates": found,
                },
            )
        body = ui_pages.message_page(
            "Ambiguous commit", error, found[: commits.MAX_LISTED], ask.href
        )
        return Reply(409, body, dict(HEADERS), content_type="text/html")


def _resolve(store: TableStore, text: str) -> str:
    prefix = commits.parse(text, shortest=MIN_PREFIX)  # ValueError names the expected form
    return commits.resolve(store, prefix)


@dataclass(frozen=True)
class _Ask:
    """One page request: the request, the format, the refresh period, how links are made."""

    request: Request
    fmt: str
    refresh: int
    href: ui_pages.Href

    def problem(self, status: int, error: str) -> Reply:
        return _problem(status, error, "commit", html=self.fmt == "html", href=self.href)


def _reply(ask: _Ask, view: dict[str, Any], title: str, main: str) -> Reply:
    if ask.fmt == "json":
        return Reply(200, view, {"Cache-Control": "no-store"})
    updated = datetime.fromisoformat(view["generated_at"]).strftime("%Y-%m-%d %H:%M:%S UTC")
    digest = hashlib.sha256(main.encode()).hexdigest()[:16]
    if ask.fmt == "fragment":
        # The page sends the digest it shows: unchanged, the answer is a few bytes.
        fragment = {"digest": digest, "updated": updated}
        if ask.request.params.get("digest") != digest:
            fragment["main"] = main
        return Reply(200, fragment, {"Cache-Control": "no-store"})
    body = ui_pages.page(
        title,
        main,
        digest=digest,
        updated=updated,
        refresh=ask.refresh,
        href=ask.href,
        query=_hidden_query(ask.request.params),
    )
    return Reply(200, body, dict(HEADERS), content_type="text/html")


def _refresh(text: str | None) -> int | None:
    if text is None:
        return DEFAULT_REFRESH
    low, high = REFRESH_RANGE
    return int(text) if text.isdigit() and low <= int(text) <= high else None


def _kept(params: Any) -> dict[str, str]:
    """What links carry on: the function key and the refresh period."""
    return {k: params[k] for k in ("code", "refresh") if params.get(k)}


def _linker(params: Any) -> ui_pages.Href:
    kept = _kept(params)
    suffix = ("?" + urlencode(kept)) if kept else ""
    return lambda path: quote(path, safe="/") + suffix


def _hidden_query(params: Any) -> str:
    return "".join(
        f'<input type="hidden" name="{ui_pages.e(k)}" value="{ui_pages.e(v)}">'
        for k, v in _kept(params).items()
    )


def _problem(
    status: int, error: str, field: str, *, html: bool, href: ui_pages.Href | None = None
) -> Reply:
    if html:
        body = ui_pages.message_page(f"{status}: {field}", error, [], href or (lambda p: p))
        return Reply(status, body, dict(HEADERS), content_type="text/html")
    return Reply(status, {"error": error, "fields": [{"field": field, "problem": error}]})
