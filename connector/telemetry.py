"""OpenTelemetry: the connector's spans, metrics and log correlation, on the global API.

Providers are never replaced: whoever set one first (the Functions worker with
`PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`, Azure Monitor, a test's in-memory
exporter) sees the same spans. `configure()` fills the gap when nobody did, with every exporter
configured (Azure Monitor and OTLP together when both are set), and adds OTLP to a provider that
exists; nothing configured: spans and metrics are no-ops.
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
events_skewed = meter.create_counter(
    "connector.events.skewed", unit="{event}", description="Event times ahead of receipt"
)
statuses_written = meter.create_counter(
    "connector.statuses.written", unit="{status}", description="Commit statuses posted"
)
gates_throttled = meter.create_counter(
    "connector.gates.throttled", unit="{post}", description="TaskCompleted answered 429"
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


class ProcessingInstruments:
    """The processor's instruments (`connector.core.processing.Instruments`) on OpenTelemetry:
    attributes on the current span, the dropped and skewed event counters."""

    def describe(self, attributes: Mapping[str, str]) -> None:
        trace.get_current_span().set_attributes(attributes)

    def dropped(self, why: str) -> None:
        events_dropped.add(1, {"why": why})

    def skewed(self, cluster: str) -> None:
        events_skewed.add(1, {"cluster": cluster})


_configured = threading.Lock()
_done = False


def configure(environ: Mapping[str, str] | None = None) -> str:
    """Set up export once per process; returns what was chosen. Every configured exporter gets
    the spans: Azure Monitor when `APPLICATIONINSIGHTS_CONNECTION_STRING` is set, OTLP when
    `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set, both when both are; OTLP
    is also added to a provider someone else installed (the Functions worker's Azure Monitor).
    The standard variables are the SDK's own: `OTEL_SERVICE_NAME` and
    `OTEL_RESOURCE_ATTRIBUTES` (the service name defaults to flux-azdo-connector),
    `OTEL_EXPORTER_OTLP_*` (endpoint, headers, timeout), `OTEL_TRACES_SAMPLER`;
    `OTEL_SDK_DISABLED=true` turns export off."""
    global _done  # noqa: PLW0603 - once per process
    env = os.environ if environ is None else environ
    with _configured:
        if _done:
            return "already"
        _done = True
        quiet_azure_sdk(env)
        connector_log_level(env)
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return "disabled"
        _enable_azure_sdk_tracing()
        return _export(env, _wants_otlp(env))


def _export(env: Mapping[str, str], otlp: bool) -> str:
    global _otlp_pending  # noqa: PLW0603 - once per process
    if _provider_is_set():
        added = otlp and _add_otlp(trace.get_tracer_provider())
        return "existing+otlp" if added else "existing"
    if env.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        if _worker_exports(env):
            # The Functions worker configures Azure Monitor itself, later: OTLP joins its
            # provider at the first span (`span`).
            _otlp_pending = otlp
            return "worker+otlp" if otlp else "worker"
        return _azure_monitor(env, otlp)
    return _otlp(env) if otlp else "none"


_otlp_pending = False


def _wants_otlp(env: Mapping[str, str]) -> bool:
    names = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return any(env.get(n, "").strip() for n in names)


def _otlp_span_processor() -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(OTLPSpanExporter())


def _otlp_metric_reader() -> Any:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return PeriodicExportingMetricReader(OTLPMetricExporter())


def _add_otlp(provider: Any) -> bool:
    """OTLP export on a provider someone else installed, if it is the SDK's (spans only: an SDK
    meter provider takes its readers when it is made)."""
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        return False
    add(_otlp_span_processor())
    return True


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


def _worker_exports(env: Mapping[str, str]) -> bool:
    """The worker exports for the app only when asked to and when Azure Monitor's distro is
    installed, which it imports; the app does not deploy the distro (requirements.in), so without
    it the connector sets up the exporter itself rather than export nothing."""
    if env.get("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "").lower() != "true":
        return False
    from importlib.util import find_spec

    return find_spec("azure.monitor.opentelemetry._configure") is not None


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


def _azure_monitor(env: Mapping[str, str], otlp: bool) -> str:
    """Traces, metrics and the `connector` logs to Application Insights, with Azure Monitor's
    exporter and the OpenTelemetry SDK only. Its distro (azure-monitor-opentelemetry) would add a
    dozen instrumentations (Django, Flask, requests, ...) the app never runs, a beta azure-core
    tracing plugin (azure-core traces natively) and live metrics; what is kept is what the distro
    configures by default: 5 traces per second unless `OTEL_TRACES_SAMPLER` says otherwise, and
    every logger's records as traces (the root logger, as the worker configured the distro: with
    PYTHON_ENABLE_OPENTELEMETRY the host forwards no worker logs)."""
    from azure.monitor.opentelemetry.exporter import (
        AzureMonitorLogExporter,
        AzureMonitorMetricExporter,
        AzureMonitorTraceExporter,
        RateLimitedSampler,
    )
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    options: dict[str, Any] = {"connection_string": env["APPLICATIONINSIGHTS_CONNECTION_STRING"]}
    if env.get("AZURE_CLIENT_ID"):
        # Application Insights with local auth disabled accepts Entra tokens only.
        from azure.identity import ManagedIdentityCredential

        options["credential"] = ManagedIdentityCredential(client_id=env["AZURE_CLIENT_ID"])
    resource = _resource(env)
    sampler = _sampler(env, RateLimitedSampler)
    tracer_provider = TracerProvider(resource=resource, sampler=sampler)
    tracer_provider.add_span_processor(BatchSpanProcessor(AzureMonitorTraceExporter(**options)))
    readers = [PeriodicExportingMetricReader(AzureMonitorMetricExporter(**options))]
    if otlp:  # the same spans and metrics to the extra OTLP endpoint too
        tracer_provider.add_span_processor(_otlp_span_processor())
        readers.append(_otlp_metric_reader())
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(AzureMonitorLogExporter(**options))
    )
    set_logger_provider(logger_provider)
    logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))
    return "azure-monitor+otlp" if otlp else "azure-monitor"


RATE_LIMITED = "microsoft.rate_limited"  # the Azure Monitor distro's name for its sampler
DEFAULT_TRACES_PER_SECOND = 5.0  # what the distro samples by default


def _sampler(env: Mapping[str, str], rate_limited: Any) -> Any:
    """Traces per second (`microsoft.rate_limited`, `OTEL_TRACES_SAMPLER_ARG`; the default
    when unset), else None: the SDK reads any other `OTEL_TRACES_SAMPLER` itself."""
    name = env.get("OTEL_TRACES_SAMPLER", "").strip()
    if name and name != RATE_LIMITED:
        return None
    try:
        rate = float(env.get("OTEL_TRACES_SAMPLER_ARG", "") or DEFAULT_TRACES_PER_SECOND)
    except ValueError:
        rate = DEFAULT_TRACES_PER_SECOND
    return rate_limited(rate if name else DEFAULT_TRACES_PER_SECOND)


def _resource(env: Mapping[str, str]) -> Any:
    """The SDK's resource from the environment (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`)
    with our version; when neither names the service: the app's name in Azure
    (`WEBSITE_SITE_NAME`, as the distro's App Service detector gives it), else ours."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    from connector import __version__

    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        name = env.get("WEBSITE_SITE_NAME") or "flux-azdo-connector"
        resource = resource.merge(Resource({SERVICE_NAME: name}))
    return resource


def _otlp(env: Mapping[str, str]) -> str:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    resource = _resource(env)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(_otlp_span_processor())
    trace.set_tracer_provider(tracer_provider)
    reader = _otlp_metric_reader()
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


def span(name: str, *, linked: str = "", **attributes: Any) -> Any:
    """A span of the connector's tracer; no work at all while nobody installed a tracer provider
    (the API's proxy would only hand out non-recording spans). `linked`: a W3C traceparent
    (`traceparent()` of another trace) the span links to."""
    if not _provider_is_set():
        return nullcontext(trace.INVALID_SPAN)
    _join_pending_otlp()
    links = _links(linked)
    return tracer.start_as_current_span(name, links=links, attributes=_clean(attributes))


def traceparent() -> str:
    """The current span as a W3C traceparent ("" outside a recorded span)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def _links(parent: str) -> list[trace.Link]:
    if not parent:
        return []
    found = trace.get_current_span(propagate.extract({"traceparent": parent}))
    context_of = found.get_span_context()
    return [trace.Link(context_of)] if context_of.is_valid else []


def _join_pending_otlp() -> None:
    global _otlp_pending  # noqa: PLW0603 - once per process
    if _otlp_pending:
        with _configured:
            if _otlp_pending:
                _otlp_pending = False
                _add_otlp(trace.get_tracer_provider())


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
