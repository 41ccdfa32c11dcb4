"""`GET /api/deployments/{commit}`: one commit's deployment as JSON
(`connector.app.views.deployments_model`, the view `python -m connector status` prints too), or
as a small HTML page (`connector.app.views.deployments_page`) with `?format=html` or
`Accept: text/html`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import AzureError

from connector.app.views import commits
from connector.app.views.deployments_model import UnknownCommitError, deployment_view, render_json
from connector.app.views.deployments_page import render_html
from connector.core.rollup import EnvironmentSpecs
from connector.settings import SettingsError
from connector.storage.tables import TableStore
from connector.web import Reply, Request

logger = logging.getLogger(__name__)

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
            commit = commits.parse(request.route.get("commit", ""), shortest=commits.FULL)
        except commits.InvalidCommitError as exc:
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
