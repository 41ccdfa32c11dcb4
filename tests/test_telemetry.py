"""One trace from Flux event to status, metrics that add up, and logs without secrets."""

from __future__ import annotations

import base64
import json
import logging

import azure.functions as func
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import function_app
from connector import telemetry
from connector.devops.client import TransientAzureDevOpsError
from tests.conftest import HMAC_KEY, flux_request
from tests.world import PAT, REPO, kustomization

pytestmark = pytest.mark.azurite

C1 = "c8925188500a55dad9563388e537a03dcdded446"
ZERO_KEY = "00000000-0000-0000-0000-000000000000"
EXPORTER = InMemorySpanExporter()
READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def providers():
    """The SDK providers a host would install; set once per process, as the API allows."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))
    assert telemetry.configure({}) in ("existing", "already")
    telemetry.install_log_correlation()


@pytest.fixture
def spans():
    EXPORTER.clear()
    return EXPORTER


def metric_points() -> dict[tuple[str, tuple], float]:
    points: dict[tuple[str, tuple], float] = {}
    data = READER.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, tuple(sorted(point.attributes.items())))
                    points[key] = getattr(point, "value", None) or getattr(point, "count", 0)
    return points


def total(points: dict, name: str, **attributes) -> float:
    wanted = set(attributes.items())
    return sum(v for (n, attrs), v in points.items() if n == name and wanted <= set(attrs))


def test_one_trace_from_webhook_through_the_queue_to_azure_devops(world, spans):
    world.azdo.add_commit(REPO, C1)
    tracer = trace.get_tracer("host")
    with tracer.start_as_current_span("invocation flux"):  # what the Functions host provides
        assert world.post(kustomization(C1)) == 202
    [message] = world.sender.messages
    assert "traceparent" in message.application_properties
    with tracer.start_as_current_span("invocation process"):
        world.deliver_queued()
    finished = spans.get_finished_spans()
    ingest = next(s for s in finished if s.name == "flux.ingest")
    process = next(s for s in finished if s.name == "queue.process")
    assert process.context.trace_id == ingest.context.trace_id
    assert process.parent.span_id == ingest.context.span_id
    assert process.links, "the processing invocation is linked"
    assert process.attributes["connector.cluster"] == "dev-1"
    assert process.attributes["connector.commit"] == C1
    assert process.attributes["connector.phase"] == "succeeded"
    assert ingest.attributes["connector.object"] == "Kustomization/flux-system/apps"
    # Azure SDK calls (state store, Azure DevOps) are spans in the same trace.
    children = [
        s
        for s in finished
        if s.context.trace_id == ingest.context.trace_id and s.kind == trace.SpanKind.CLIENT
    ]
    assert any("statuses" in str(s.attributes.get("url.full", s.name)) for s in children), [
        (s.name, dict(s.attributes)) for s in children
    ]


def test_metrics_for_a_small_storm(world):
    world.azdo.add_commit(REPO, C1)
    before = metric_points()
    world.azdo.inject("/statuses", 429, count=1, retry_after="0")
    world.send(kustomization(C1, "Progressing", time="2026-05-14T09:12:00Z"))
    world.send(kustomization(C1, time="2026-05-14T09:12:50Z"))
    world.send(kustomization(C1, time="2026-05-14T09:22:50Z"))  # unchanged re-send
    world.send(kustomization(C1, "Progressing", time="2026-05-14T09:10:00Z"))  # stale
    assert world.post(b"{}") == 422
    after = metric_points()

    def delta(name, **attrs):
        return total(after, name, **attrs) - total(before, name, **attrs)

    assert delta("connector.events.received", cluster="dev-1") == 2  # queued
    assert delta("connector.events.rejected", cause="invalid") == 1
    # The unchanged re-send and the stale event are answered at the ingest door.
    assert delta("connector.events.dropped", why="settled_at_door") == 2
    assert delta("connector.events.dropped", why="unchanged") == 0
    assert delta("connector.events.dropped", why="stale") == 0
    assert delta("connector.statuses.written") == len(world.azdo.status_writes()) - 1 == 4
    assert delta("connector.azdo.throttled") == 1
    assert delta("connector.azdo.requests") == len(world.azdo.calls())
    assert delta("connector.status.latency") == 4  # one latency sample per status


def test_logs_carry_the_trace_id(world, caplog):
    world.azdo.add_commit(REPO, C1)
    with (
        caplog.at_level(logging.INFO, logger="connector"),
        trace.get_tracer("host").start_as_current_span("invocation"),
    ):
        world.post(kustomization(C1))
    accepted = next(r for r in caplog.records if r.getMessage() == "ingest.accepted")
    assert len(accepted.trace_id) == 32
    assert accepted.trace_id != "0" * 32


def test_no_secret_reaches_any_log_line(world, caplog):
    """Feed every secret through every path, then grep everything that was logged."""
    hook_secret = "hook-secret-abcdef-123"
    job_token = "job-access-token-zyx-987"
    world.configure(AZDO_HOOK_SECRET=hook_secret, SUBSCRIBERS_HMAC_KEY="subscriber-key-555")
    world.azdo.add_commit(REPO, C1)
    body = json.dumps(kustomization(C1)).encode()
    signature = flux_request(body).headers["x-signature"]
    secrets = [
        HMAC_KEY.decode(),
        signature.split("=", 1)[1],
        PAT,
        base64.b64encode(f":{PAT}".encode()).decode(),
        hook_secret,
        job_token,
        base64.b64encode(f"x:{hook_secret}".encode()).decode(),
        "subscriber-key-555",
    ]
    with caplog.at_level(logging.DEBUG):
        function_app.flux(flux_request(body))
        function_app.flux(flux_request(body, key=b"wrong key"))
        function_app.flux(flux_request(b"not json"))
        world.deliver_queued()
        world.azdo.inject("/statuses", 500, count=20)
        world.post(kustomization(C1, "HealthCheckFailed", time="2026-05-14T09:30:00Z"))
        with pytest.raises(TransientAzureDevOpsError):
            world.deliver_queued()  # Azure DevOps failures are logged with their details
        headers = {
            "PlanUrl": world.azdo.org_url,
            "ProjectId": "p",
            "HubName": "build",
            "PlanId": "1" * 8,
            "JobId": "2" * 8,
            "TimelineId": "3" * 8,
            "TaskInstanceId": "4",
            "AuthToken": job_token,
        }
        function_app.gates(
            func.HttpRequest(
                method="POST",
                url="/api/gates",
                headers=headers,
                body=json.dumps({"environment": "dev", "commit": C1}).encode(),
            )
        )
        function_app.gates(
            func.HttpRequest(
                method="POST",
                url="/api/gates",
                headers={**headers, "PlanUrl": "https://evil.example/"},
                body=b'{"environment":"dev","commit":"' + C1.encode() + b'"}',
            )
        )
        for password in (hook_secret, "wrong"):
            auth = base64.b64encode(f"x:{password}".encode()).decode()
            function_app.devops_events(
                func.HttpRequest(
                    method="POST",
                    url="/api/devops/events",
                    headers={"Authorization": f"Basic {auth}"},
                    body=b"{}",
                )
            )
    logged = "\n".join(
        f"{r.getMessage()} {json.dumps(r.__dict__, default=str)}" for r in caplog.records
    )
    assert caplog.records, "the paths above log"
    for secret in secrets:
        assert secret not in logged, f"a secret leaked into the logs: {secret[:4]}…"


@pytest.mark.parametrize(
    ("environ", "chosen", "provider"),
    [
        ({}, "none", "ProxyTracerProvider"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, "otlp", "TracerProvider"),
        (
            {
                "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x;IngestionEndpoint=a",
                "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
            },
            "worker",
            "ProxyTracerProvider",
        ),
        (
            {
                "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={ZERO_KEY};"
                "IngestionEndpoint=http://127.0.0.1:9/"
            },
            "azure-monitor",
            "TracerProvider",
        ),
    ],
)
def test_configure_chooses_the_exporter_in_a_fresh_process(environ, chosen, provider):
    """Each in its own interpreter: a provider can be set once per process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import json, sys; from opentelemetry import trace; from connector import telemetry;"
        "chosen = telemetry.configure(json.loads(sys.argv[1]));"
        "print(chosen, type(trace.get_tracer_provider()).__name__)"
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS"))
    }
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code, json.dumps(environ)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        timeout=120,
    )
    assert out.stdout.split()[:2] == [chosen, provider], out.stderr[-2000:]
