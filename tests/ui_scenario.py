"""A dev → prod rollout over four clusters, processed for real (Flux webhook → queue function →
Azurite, the fake Azure DevOps), for the on-call pages: the previous commit healthy everywhere,
the new one healthy in dev, failing one object in prod-eu and not yet in prod-us, with the prod
gate open. Also a loopback HTTP server that hands each request to the registered `ui` function
(as the Functions host does: route parameters from `ui/{commit?}`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

import function_app
from tests.integration.test_gates import plan, register
from tests.world import REPO, World, kustomization

OLD = "0a1b2c3d4e" * 4
NEW = "9f8e7d6c5b" * 4
ENVIRONMENTS = {
    "dev": {"clusters": ["dev-1", "dev-2"]},
    "prod": {"clusters": ["prod-eu", "prod-us"]},
}
OBJECTS = ("infra", "apps")
FAILURE = (
    "Health check failed after 5m0s: timeout waiting for: "
    "[Deployment/shop/web status: 'InProgress']"
)
GRACE_SECONDS = 900


def at(minutes: float) -> str:
    """An event time `minutes` from now (negative: in the past), as Flux writes it."""
    moment = datetime.now(UTC) + timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def rollout(world: World) -> dict[str, str]:
    """Process the scripted rollout; returns the prod gate's registration headers."""
    world.configure(
        ENVIRONMENTS=json.dumps(ENVIRONMENTS), GATE_FAILURE_GRACE_SECONDS=str(GRACE_SECONDS)
    )
    world.azdo.add_commit(REPO, OLD, "Merged PR 41: shop 1.4")
    world.azdo.add_commit(REPO, NEW, "Merged PR 42: shop 1.5", parents=[OLD])
    for env, spec in ENVIRONMENTS.items():
        for cluster in spec["clusters"]:
            for name in OBJECTS:
                healthy(world, OLD, cluster, env, name, minutes=-120)
    for cluster in ("dev-1", "dev-2"):
        for name in OBJECTS:
            healthy(world, NEW, cluster, "dev", name, minutes=-30)
    headers = plan(world)
    status, body = register(world, headers, environment="prod", commit=NEW, pullRequestId=42)
    assert status < 300, body
    assert body["state"] == "waiting", body
    world.deliver_queued()
    healthy(world, NEW, "prod-eu", "prod", "infra", minutes=-6)
    progressing(world, NEW, "prod-eu", "prod", "apps", minutes=-6)
    send(world, NEW, "prod-eu", "prod", "apps", -1, "HealthCheckFailed", FAILURE)
    return headers


def healthy(
    world: World, commit: str, cluster: str, env: str, name: str, *, minutes: float
) -> None:
    progressing(world, commit, cluster, env, name, minutes=minutes)
    send(world, commit, cluster, env, name, minutes + 0.5, "ReconciliationSucceeded", None)


def progressing(
    world: World, commit: str, cluster: str, env: str, name: str, *, minutes: float
) -> None:
    send(world, commit, cluster, env, name, minutes, "Progressing", None)


def send(  # noqa: PLR0917 - one Flux event, named in the order it reads
    world: World,
    commit: str,
    cluster: str,
    env: str,
    name: str,
    minutes: float,
    reason: str,
    message: str | None,
) -> None:
    event = kustomization(commit, reason, name=name, time=at(minutes), message=message)
    world.send(event, cluster=cluster, env=env)


def next_event(world: World) -> None:
    """What the refresh must pick up: prod-us starts deploying the new commit."""
    progressing(world, NEW, "prod-us", "prod", "infra", minutes=0)


# --- the loopback server ----------------------------------------------------------------------


def ui_request(path: str, query: str, headers: dict[str, str]) -> func.HttpRequest:
    route = path.removeprefix("/api/ui").strip("/")
    return func.HttpRequest(
        method="GET",
        url=f"http://127.0.0.1{path}" + (f"?{query}" if query else ""),
        headers=headers,
        params=dict(parse_qsl(query)),
        route_params={"commit": route} if route else {},
        body=b"",
    )


@contextmanager
def serving(on_post: Callable[[str], None] | None = None) -> Iterator[str]:
    """Serve `/api/ui...` through `function_app.ui` on a free loopback port (one thread: the
    handlers run as in the host, one request at a time here). `POST /test/<name>` calls
    `on_post(name)`, so a browser test can ask for the next event."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if not (parts.path == "/api/ui" or parts.path.startswith("/api/ui/")):
                self._send(404, "text/plain", b"not found", {})
                return
            resp = function_app.ui(ui_request(parts.path, parts.query, dict(self.headers)))
            self._send(resp.status_code, resp.mimetype, resp.get_body(), dict(resp.headers))

        def do_POST(self) -> None:
            if on_post is None or not self.path.startswith("/test/"):
                self._send(404, "text/plain", b"not found", {})
                return
            on_post(self.path.removeprefix("/test/"))
            self._send(204, "text/plain", b"", {})

        def _send(self, status: int, mimetype: str, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-type", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Type", f"{mimetype}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
