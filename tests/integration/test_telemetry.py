"""One trace from Flux event to status, metrics that add up, and logs without secrets."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import cast

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
ROOT_DIR = Path(__file__).resolve().parents[2]
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
                    key = (metric.name, tuple(sorted((point.attributes or {}).items())))
                    value = getattr(point, "value", None) or getattr(point, "count", 0)
                    points[key] = cast(float, value)
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
    cluster_key = "cluster-key-dev-1-777"
    world.configure(
        AZDO_HOOK_SECRET=hook_secret,
        SUBSCRIBERS_HMAC_KEY="subscriber-key-555",
        FLUX_CLUSTER_KEYS=json.dumps({"dev-1": cluster_key}),
    )
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
        cluster_key,
    ]
    with caplog.at_level(logging.DEBUG):
        function_app.flux(flux_request(body))
        own = flux_request(body, key=cluster_key.encode(), params={"cluster": "prod-eu"})
        assert function_app.flux(own).status_code == 403
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
                # The worker would need Azure Monitor's distro, which is not deployed: ours then.
                "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={ZERO_KEY};"
                "IngestionEndpoint=http://127.0.0.1:9/",
                "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
            },
            "azure-monitor",
            "TracerProvider",
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
    # The exporter's own usage telemetry (statsbeat) goes to a Microsoft host: loopback only here.
    env["APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL"] = "true"
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code, json.dumps(environ)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        timeout=120,
    )
    assert out.stdout.split()[:2] == [chosen, provider], out.stderr[-2000:]


def test_a_gate_s_completion_span_links_to_its_registration(world, spans):
    from tests.integration.test_gates import plan, register

    world.azdo.add_commit(REPO, C1)
    tracer = trace.get_tracer("host")
    headers = plan(world)
    with tracer.start_as_current_span("invocation gates"):
        assert register(world, headers, environment="dev", commit=C1)[0] == 200
    world.sender.drain()  # the gate check: nothing deployed yet
    with tracer.start_as_current_span("invocation flux"):
        assert world.post(kustomization(C1)) == 202
    with tracer.start_as_current_span("invocation process"):
        world.deliver_queued()

    finished = spans.get_finished_spans()
    registered = next(s for s in finished if s.name == "gate.register")
    completed = next(s for s in finished if s.name == "gate.complete")
    assert completed.context.trace_id != registered.context.trace_id  # the event's trace
    assert [link.context.span_id for link in completed.links] == [registered.context.span_id]
    assert completed.links[0].context.trace_id == registered.context.trace_id


AZURE_MONITOR_PROBE = """
import json, logging, sys
from opentelemetry import _logs, metrics, trace
from connector import __version__, telemetry
chosen = telemetry.configure(json.loads(sys.argv[1]))
provider = trace.get_tracer_provider()
handlers = [type(h).__name__ for h in logging.getLogger().handlers]
print(json.dumps({
    "chosen": chosen,
    "tracer": type(provider).__name__,
    "sampler": type(provider.sampler).__name__,
    "exporters": sorted(
        type(p.span_exporter).__name__ for p in provider._active_span_processor._span_processors
    ),
    "meter": type(metrics.get_meter_provider()).__name__,
    "logger": type(_logs.get_logger_provider()).__name__,
    "handlers": handlers,
    "resource": dict(provider.resource.attributes),
    "version": __version__,
    "distro": sorted(m for m in sys.modules if m.startswith(("azure.monitor.opentelemetry._",
        "opentelemetry.instrumentation", "azure.core.tracing.ext"))),
}))
"""


@pytest.mark.parametrize(
    ("extra", "sampler"),
    [({}, "RateLimitedSampler"), ({"OTEL_TRACES_SAMPLER": "always_on"}, "StaticSampler")],
)
def test_azure_monitor_exports_traces_metrics_and_connector_logs(extra, sampler):
    """Azure Monitor's exporter without its distro: the three signals, the distro's default
    sampling (5 traces/s) unless OTEL_TRACES_SAMPLER names another, every logger's records, the
    app's name and our version on every record, and no instrumentation or tracing plugin
    imported."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    environ = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={ZERO_KEY};"
        "IngestionEndpoint=http://127.0.0.1:9/",
        "WEBSITE_SITE_NAME": "fa-x",
        **extra,
    }
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS"))
    }
    env.update(extra, APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true")
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", AZURE_MONITOR_PROBE, json.dumps(environ)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        timeout=120,
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["chosen"] == "azure-monitor"
    assert (seen["tracer"], seen["meter"], seen["logger"]) == (
        "TracerProvider",
        "MeterProvider",
        "LoggerProvider",
    )
    assert seen["exporters"] == ["AzureMonitorTraceExporter"]
    assert seen["sampler"] == sampler
    assert "LoggingHandler" in seen["handlers"]
    assert seen["resource"]["service.name"] == "fa-x"
    assert seen["resource"]["service.version"] == seen["version"]
    assert seen["distro"] == []


def test_the_worker_exports_only_when_asked_and_its_distro_is_there(monkeypatch):
    import importlib.util

    asked = {"PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true"}
    real = importlib.util.find_spec
    for installed in (False, True):
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *a, installed=installed: (
                (object() if installed else None)
                if name.startswith("azure.monitor.opentelemetry")
                else real(name)
            ),
        )
        assert telemetry._worker_exports(asked) is installed
        assert telemetry._worker_exports({}) is False
    # The distro is not deployed (requirements.in), so the lock holds none.
    assert "\nazure-monitor-opentelemetry==" not in (ROOT_DIR / "requirements.txt").read_text()
