"""OpenTelemetry: the connector's spans, metrics and log correlation, on the global API.

Providers are never replaced: whoever set one first (the Functions worker with
`PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`, Azure Monitor, a test's in-memory
exporter) sees the same spans. `configure()` only fills the gap when nobody did: Azure Monitor
when `APPLICATIONINSIGHTS_CONNECTION_STRING` is set, else OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT`
is set, else nothing (spans and metrics are then no-ops).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

from opentelemetry import context, metrics, propagate, trace

logger = logging.getLogger(__name__)

tracer = trace.get_tracer("flux_azdo_connector")
meter = metrics.get_meter("flux_azdo_connector")

events_received = meter.create_counter(
    "connector.events.received", unit="{event}", description="Flux events accepted and queued"
)
events_rejected = meter.create_counter(
    "connector.events.rejected", unit="{event}", description="Webhook calls refused, by cause"
)
events_dropped = meter.create_counter(
    "connector.events.dropped",
    unit="{event}",
    description="Events that changed nothing: duplicate, stale, unchanged, ignored",
)
statuses_written = meter.create_counter(
    "connector.statuses.written", unit="{status}", description="Commit statuses posted"
)
gates_registered = meter.create_counter("connector.gates.registered", unit="{gate}")
gates_completed = meter.create_counter(
    "connector.gates.completed", unit="{gate}", description="TaskCompleted sent, by result"
)
azdo_requests = meter.create_counter(
    "connector.azdo.requests", unit="{request}", description="Azure DevOps responses, by status"
)
azdo_throttled = meter.create_counter(
    "connector.azdo.throttled", unit="{request}", description="Azure DevOps 429 answers"
)
spektate_errors = meter.create_counter(
    "connector.spektate.errors",
    unit="{error}",
    description="Spektate writes given up (permanent errors, not redelivered), by step and status",
)
status_latency = meter.create_histogram(
    "connector.status.latency",
    unit="s",
    description="From the Flux event's timestamp to its commit status being posted",
)

_configured = threading.Lock()
_done = False


def configure(environ: Mapping[str, str] | None = None) -> str:
    """Set up export once per process unless a provider exists; returns what was chosen."""
    global _done  # noqa: PLW0603 - once per process
    env = os.environ if environ is None else environ
    with _configured:
        if _done:
            return "already"
        _done = True
        quiet_azure_sdk(env)
        connector_log_level(env)
        _enable_azure_sdk_tracing()
        if _provider_is_set():
            return "existing"
        if env.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
            if env.get("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "").lower() == "true":
                return "worker"  # the Functions worker configures Azure Monitor itself
            return _azure_monitor(env)
        if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return _otlp()
        return "none"


# The Azure SDK's loggers: azure-core's HttpLoggingPolicy logs every request and response at INFO
# (`azure.core.pipeline.policies.http_logging_policy`), as do azure-identity and azure-servicebus;
# uamqp is the older Service Bus transport. In Azure each line is a billed App Insights trace.
AZURE_SDK_LOGGERS = ("azure", "uamqp")
AZURE_SDK_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_AZURE_SDK_LOG_LEVEL = "WARNING"


def quiet_azure_sdk(environ: Mapping[str, str]) -> str:
    """Set the Azure SDK loggers to `AZURE_SDK_LOG_LEVEL` (default WARNING); returns the level.
    Read from the environment, before the settings are: an invalid value keeps the default here
    and is named by `Settings` validation."""
    wanted = environ.get("AZURE_SDK_LOG_LEVEL", "").strip().upper()
    level = wanted if wanted in AZURE_SDK_LOG_LEVELS else DEFAULT_AZURE_SDK_LOG_LEVEL
    for name in AZURE_SDK_LOGGERS:
        logging.getLogger(name).setLevel(level)
    return level


# The connector's own per-event records (`ingest.accepted`, `process.recorded`, ...) are INFO:
# at fleet rates each is a billed trace per event (docs/cost.md). WARNING keeps every refusal,
# failure and give-up; the host's request records, sampled (host.json), stand for the successes.
DEFAULT_CONNECTOR_LOG_LEVEL = "WARNING"


def connector_log_level(environ: Mapping[str, str]) -> str:
    """Set the `connector` logger to `CONNECTOR_LOG_LEVEL` (default WARNING); returns it. An
    invalid value keeps the default here and is named by `Settings` validation."""
    wanted = environ.get("CONNECTOR_LOG_LEVEL", "").strip().upper()
    level = wanted if wanted in AZURE_SDK_LOG_LEVELS else DEFAULT_CONNECTOR_LOG_LEVEL
    logging.getLogger("connector").setLevel(level)
    return level


def _provider_is_set() -> bool:
    # The API's default is a proxy; anything else was installed by someone on purpose.
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _enable_azure_sdk_tracing() -> None:
    """azure-core (Tables, Service Bus, our Azure DevOps pipeline) then emits its own spans."""
    from azure.core.settings import settings

    settings.tracing_enabled = True


def _azure_monitor(env: Mapping[str, str]) -> str:
    from azure.monitor.opentelemetry import configure_azure_monitor

    options: dict[str, Any] = {"connection_string": env["APPLICATIONINSIGHTS_CONNECTION_STRING"]}
    if env.get("AZURE_CLIENT_ID"):
        # Application Insights with local auth disabled accepts Entra tokens only.
        from azure.identity import ManagedIdentityCredential

        options["credential"] = ManagedIdentityCredential(client_id=env["AZURE_CLIENT_ID"])
    configure_azure_monitor(logger_name="connector", **options)
    return "azure-monitor"


def _otlp() -> str:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "flux-azdo-connector"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    return "otlp"


@contextmanager
def continued(carrier: Mapping[str, Any], name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span continuing the trace whose context `carrier` holds (a queue message's
    application properties), linked to the invocation's own span."""
    here = trace.get_current_span().get_span_context()
    links = [trace.Link(here)] if here.is_valid else []
    parent = propagate.extract({k: str(v) for k, v in carrier.items()})
    token = context.attach(parent)
    try:
        with tracer.start_as_current_span(name, links=links, attributes=_clean(attributes)) as span:
            yield span
    finally:
        context.detach(token)


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {f"connector.{k}": v for k, v in attributes.items() if v is not None}


def span(name: str, **attributes: Any) -> Any:
    """A span of the connector's tracer; no work at all while nobody installed a tracer provider
    (the API's proxy would only hand out non-recording spans)."""
    if not _provider_is_set():
        return nullcontext(trace.INVALID_SPAN)
    return tracer.start_as_current_span(name, attributes=_clean(attributes))


def seconds_since(moment: datetime) -> float:
    return max(0.0, (datetime.now(UTC) - moment).total_seconds())


_factory_installed = False


def install_log_correlation() -> None:
    """Every log record gets `trace_id` and `span_id` of the current span (empty outside one).
    A record factory rather than a filter: filters on a logger do not reach its children."""
    global _factory_installed  # noqa: PLW0603 - once per process
    with _configured:
        if _factory_installed:
            return
        _factory_installed = True
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            ctx = trace.get_current_span().get_span_context()
            record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else ""
            record.span_id = format(ctx.span_id, "016x") if ctx.is_valid else ""
            return record

        logging.setLogRecordFactory(factory)
