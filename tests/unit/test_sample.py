"""`python -m connector send-sample` against the real function app, served on loopback.

A small http.server adapter hands each request to `function_app.flux` as a real
`azure.functions.HttpRequest` (as the Functions host would), so the signature check, validation
and queueing are the app's own; only the Service Bus sender is the recording fake.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import azure.functions as func
import pytest

import function_app
from connector.app.cli import sample
from connector.app.cli.main import main
from connector.queue.envelope import Envelope
from connector.sources.flux.events import FluxEvent
from tests.conftest import BASE_SETTINGS, HMAC_KEY
from tests.flux_encoding import go_json

C1 = "c8925188500a55dad9563388e537a03dcdded446"
FUNCTION_KEY = "function-key-qwerty-42"


@dataclass
class LocalApp:
    url: str
    seen: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def app(install) -> Iterator[LocalApp]:
    install()
    local = LocalApp(url="")

    class Host(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            local.seen.append({k.lower(): v for k, v in self.headers.items()})
            path, _, query = self.path.partition("?")
            request = func.HttpRequest(
                method="POST",
                url=f"http://127.0.0.1{path}",
                headers=dict(self.headers.items()),
                params=dict(p.split("=", 1) for p in query.split("&") if "=" in p),
                body=body,
            )
            response = function_app.flux(request)
            self.send_response(response.status_code)
            self.send_header("Content-Type", response.mimetype or "application/json")
            self.end_headers()
            self.wfile.write(response.get_body())

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Host)
    local.url = f"http://127.0.0.1:{server.server_port}/api/flux"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield local
    server.shutdown()
    server.server_close()


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(capsys, *argv: str, **settings: str) -> tuple[int, str, str]:
    code = main(["send-sample", *argv], environ={**BASE_SETTINGS, **settings})
    out, err = capsys.readouterr()
    return code, out, err


@dataclass(frozen=True)
class Queued:
    cluster: str
    env: str
    event: FluxEvent


def queued(sender) -> list[Queued]:
    envelopes = [Envelope.model_validate_json(m.body) for m in sender.messages]
    return [Queued(e.cluster, e.env, FluxEvent.model_validate(e.event)) for e in envelopes]


def test_succeeded_rollout_is_accepted_and_queued(app, sender, capsys):
    code, out, err = run(
        capsys, "--url", app.url, "--cluster", "prod-eu", "--env", "prod", "--commit", C1.upper()
    )

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"sending a succeeded rollout of commit {C1} to {app.url}"
    assert lines[1].startswith("Progressing: 202 ")
    assert lines[2].startswith("ReconciliationSucceeded: 202 ")
    envelopes = queued(sender)
    assert [e.event.reason for e in envelopes] == ["Progressing", "ReconciliationSucceeded"]
    assert {(e.cluster, e.env, e.event.commit) for e in envelopes} == {("prod-eu", "prod", C1)}
    assert envelopes[0].event.timestamp < envelopes[1].event.timestamp
    assert envelopes[1].event.metadata["commit_status"] == "update"


def test_failed_rollout_ends_in_a_health_check_failure(app, sender, capsys):
    code, _, err = run(capsys, "--url", app.url, "--phase", "failed")

    assert code == 0, err
    last = queued(sender)[-1]
    assert (last.event.reason, last.event.severity) == ("HealthCheckFailed", "error")
    # Defaults: the settings' DEFAULT_CLUSTER / DEFAULT_ENV, and a fresh commit each run.
    assert (last.cluster, last.env) == (
        BASE_SETTINGS["DEFAULT_CLUSTER"],
        BASE_SETTINGS["DEFAULT_ENV"],
    )
    assert last.event.commit is not None
    run(capsys, "--url", app.url, "--phase", "progressing")
    assert queued(sender)[-1].event.commit != last.event.commit


def test_events_are_in_flux_wire_format_with_its_headers(app, sender, capsys):
    code, _, err = run(capsys, "--url", app.url, "--phase", "progressing")

    assert code == 0, err
    [message] = sender.messages
    raw = message.body.split(b',"event":', 1)[1][:-1]  # the event's bytes, embedded unchanged
    assert raw == go_json(json.loads(raw))
    [headers] = app.seen
    assert headers["content-type"] == "application/json"
    assert headers["gotk-component"] == "kustomize-controller"
    assert headers["user-agent"] == "Go-http-client/1.1"
    assert headers["x-signature"].startswith("sha256=")


def test_signs_with_the_first_of_rotated_keys(install, app, sender, capsys):
    install({**BASE_SETTINGS, "FLUX_HMAC_KEY": "new-key-2"})  # the app knows only the new key

    code, _, err = run(capsys, "--url", app.url, FLUX_HMAC_KEY="new-key-2,old-key-1")

    assert code == 0, err
    assert len(sender.messages) == 2


def test_wrong_key_prints_the_refusal_and_stops(app, sender, capsys):
    code, out, _ = run(capsys, "--url", app.url, FLUX_HMAC_KEY="not-the-app-key")

    assert code == 3
    [_, answer] = out.splitlines()
    assert answer.startswith("Progressing: 401 ")
    assert "signature" in answer.lower()
    assert sender.messages == []
    assert "not-the-app-key" not in out


@pytest.mark.parametrize("where", ["--code", "FLUX_FUNCTION_KEY"])
def test_function_key_goes_in_a_header_and_is_never_printed(app, capsys, where):
    argv = ["--url", f"{app.url}?code={FUNCTION_KEY}"]
    argv += ["--code", FUNCTION_KEY] if where == "--code" else []
    settings = {"FLUX_FUNCTION_KEY": FUNCTION_KEY} if where != "--code" else {}

    code, out, err = run(capsys, *argv, **settings)

    assert code == 0, err
    assert all(h["x-functions-key"] == FUNCTION_KEY for h in app.seen)
    assert FUNCTION_KEY not in out + err
    assert HMAC_KEY.decode() not in out + err


def test_unsigned_when_the_app_allows_it(install, app, sender, capsys):
    install({**BASE_SETTINGS, "FLUX_HMAC_KEY": "", "FLUX_ALLOW_UNSIGNED": "true"})

    code, _, err = run(capsys, "--url", app.url, FLUX_HMAC_KEY="", FLUX_ALLOW_UNSIGNED="true")

    assert code == 0, err
    assert all("x-signature" not in h for h in app.seen)
    assert len(sender.messages) == 2


def test_no_key_configured_is_a_configuration_error(capsys):
    code, out, err = run(capsys, FLUX_HMAC_KEY="")

    assert code == 2
    assert "FLUX_CLUSTER_KEYS" in err
    assert "FLUX_HMAC_KEY" in err
    assert out == ""


def test_nothing_listening_says_no_answer(capsys, unused_port: int):
    code, out, _ = run(capsys, "--url", f"http://127.0.0.1:{unused_port}/api/flux")

    assert code == 3
    assert out.splitlines()[1].startswith("Progressing: no answer ")


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--commit", "abc123"], "40 hexadecimal"),
        (["--phase", "done"], "invalid choice"),
        (["--url", "file:///etc/passwd"], "http(s)"),
    ],
)
def test_bad_arguments_are_usage_errors(capsys, argv: list[str], complaint: str):
    code, _, err = run(capsys, *argv)

    assert code == 2
    assert complaint in err


def test_events_follow_the_rollout_order() -> None:
    rollout = sample.Sample(cluster="c", env="e", commit=C1, phase="succeeded")

    bodies: list[dict[str, Any]] = [
        json.loads(body) for _, body in sample.events(rollout, datetime(2026, 5, 14, tzinfo=UTC))
    ]

    assert [b["timestamp"] for b in bodies] == ["2026-05-13T23:59:59Z", "2026-05-14T00:00:00Z"]
    assert list(bodies[0]["metadata"]) == ["cluster", "env", "revision"]
