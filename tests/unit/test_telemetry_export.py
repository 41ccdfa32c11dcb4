"""Spans reach every configured exporter (`connector.telemetry.configure`): Application Insights
and OTLP together, OTLP added to a provider the Functions worker installed, and the standard
`OTEL_*` variables honoured. Each case in its own interpreter (a provider is set once per
process), exporting to a loopback OTLP/HTTP collector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ZERO_KEY = "00000000-0000-0000-0000-000000000000"
APP_INSIGHTS = f"InstrumentationKey={ZERO_KEY};IngestionEndpoint=http://127.0.0.1:9/"


class Collector:
    """Records the paths and bodies of OTLP/HTTP exports (protobuf: names appear verbatim)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                collector.received.append((self.path, self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def traces(self) -> bytes:
        return b"".join(body for path, body in self.received if path == "/v1/traces")


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
    yield found
    found.server.shutdown()


def run(environ: dict[str, str], before: str = "") -> str:
    """configure(), one connector span, flush; prints what configure chose."""
    code = (
        "import json, sys; from opentelemetry import trace; from connector import telemetry;"
        f"{before}"
        "chosen = telemetry.configure(json.loads(sys.argv[1]));"
        "{after}"
        "span = telemetry.span('probe.span', check='yes');"
        "span.__enter__(); span.__exit__(None, None, None);"
        "getattr(trace.get_tracer_provider(), 'force_flush', lambda: None)(); print(chosen)"
    )
    code = code.replace("{after}", environ.pop("_after", ""))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS"))
    }
    env.update(environ)
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code, json.dumps(environ)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    return out.stdout.split()[-1] if out.stdout.split() else out.stderr[-2000:]


def test_application_insights_and_otlp_together(collector) -> None:
    chosen = run(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": APP_INSIGHTS,
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_SERVICE_NAME": "gitops-connector-weu",
            # Azure Monitor's own sampler (rate-limited by default) through the standard variables
            "OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage",
            "OTEL_TRACES_SAMPLER_ARG": "1.0",
        }
    )
    assert chosen == "azure-monitor+otlp"
    assert b"probe.span" in collector.traces()
    assert b"gitops-connector-weu" in collector.traces()  # OTEL_SERVICE_NAME honoured


def test_otlp_alone_names_the_service_by_default_or_by_the_standard_variables(collector) -> None:
    assert run({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}) == "otlp"
    assert b"flux-azdo-connector" in collector.traces()
    collector.received.clear()

    attributes = "service.name=from-attributes,deployment.environment=prod"
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}
    assert run({**environ, "OTEL_RESOURCE_ATTRIBUTES": attributes}) == "otlp"
    assert b"from-attributes" in collector.traces()
    assert b"flux-azdo-connector" not in collector.traces()


def test_otlp_joins_a_provider_someone_else_installed(collector) -> None:
    before = (
        "from opentelemetry.sdk.trace import TracerProvider;"
        "trace.set_tracer_provider(TracerProvider());"
    )
    assert run({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}, before) == "existing+otlp"
    assert b"probe.span" in collector.traces()


def test_without_the_distro_the_app_exports_to_both_even_if_a_provider_comes_later(
    collector,
) -> None:
    """The worker exports only with Azure Monitor's distro, which the app does not deploy
    (requirements.in): the app's own exporter then serves both, and a provider set later is
    refused by the API, so OTLP still gets every span."""
    after = (
        "from opentelemetry.sdk.trace import TracerProvider;"
        "trace.set_tracer_provider(TracerProvider());"  # what the worker does after us
    )
    environ = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": APP_INSIGHTS,
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_TRACES_SAMPLER": "always_on",  # the rate limiter may drop a process's first span
        "_after": after,
    }
    assert run(environ) == "azure-monitor+otlp"
    assert b"probe.span" in collector.traces()


def test_otel_sdk_disabled_exports_nothing(collector) -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_SDK_DISABLED": "true"}
    assert run(environ) == "disabled"
    assert collector.traces() == b""
