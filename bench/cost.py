"""The monthly cost of a fleet, billed as Azure bills it, fed with counts measured here.

Measured (on Azurite and the fake Azure DevOps, through the registered functions):
- per event class, Service Bus sends, queue executions and Table requests, at the door and in
  the queue function (bench/fleet.py);
- per re-send, CPU instructions (callgrind, `--instructions`): the HTTP function answering at the
  door, and, as before the door, the HTTP function queueing it plus the queue function reading it;
- per re-send, the worker's log records at the level it runs at (INFO before, WARNING now).

Modelled (docs/cost.md says why, and where each price comes from): Flex Consumption on-demand
billing (instance memory x the seconds an instance has any execution running, plus executions),
the instances the session model needs, Service Bus operations as the Functions extension performs
them, Table transactions, and telemetry volume at Log Analytics prices.

Run: `.venv/bin/python bench/cost.py [--instructions]` (callgrind takes a few minutes).
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SECONDS_PER_MONTH = 730 * 3600
OBJECTS_PER_CLUSTER = 50
RESENDS_PER_HOUR = 6  # every 10 minutes

# Prices, US list prices, pay-as-you-go (docs/cost.md gives each source; "unverified" there).
FLEX_GB_SECOND = 0.000026  # on-demand execution time
FLEX_PER_MILLION_EXECUTIONS = 0.40
FLEX_FREE_GB_SECONDS = 100_000
FLEX_FREE_EXECUTIONS = 250_000
SB_BASE = 10.0  # Standard, per month, 13M operations included
SB_TIERS = ((13e6, 0.0), (100e6, 0.80), (2_500e6, 0.50), (math.inf, 0.20))  # $ per million
TABLE_PER_10K = 0.00036
LOG_GB = 2.30  # Log Analytics, Analytics logs, pay-as-you-go ingestion


@dataclass(frozen=True)
class Shape:
    """What one steady-state event (a re-send) costs, and how the app is sized."""

    sends: float  # Service Bus sends per re-send
    queue_executions: float
    table_requests: float  # at the door and in the queue function
    http_instructions: float  # the HTTP function's own work (our code), per re-send
    queue_instructions: float
    records: float  # telemetry records per re-send (worker and host)
    record_bytes: float = 700.0  # billed size of one record (unverified: Log Analytics' own)
    # Sampling: at most this many records per second and HTTP instance (host and worker
    # together, host.json and OTEL_TRACES_SAMPLER_ARG); None: every record is kept.
    sampled_per_second: float | None = None
    http_instance_mb: int = 2048
    queue_instance_mb: int = 2048
    host_instructions: float = 1.5e6  # the Functions host's own per execution (unverified)
    instructions_per_vcpu_second: float = 2.5e9  # (unverified)
    # Changes: a rollout per object and day, two events each (Progressing, Succeeded).
    changes_per_object_day: float = 2.0
    change_table_requests: float = 14.0  # door 2 + queue function ~12 (bench/fleet.py)
    rollout_seconds_per_day: float = 1800.0  # when the queue function runs at all
    session_messages_per_instance_second: float = 15.0  # 32 slots, 2 s idle (docs/scale.md)


# Flex instance sizes and their share of a vCPU (Learn, flex-consumption-plan, "Instance memory":
# 512 MB, 2,048 MB, 4,096 MB; the vCPU shares are unverified).
VCPU = {512: 0.25, 2048: 1.0, 4096: 2.0}


def monthly(clusters: int, shape: Shape) -> dict[str, float]:
    """Dollars per month by line item."""
    events = clusters * OBJECTS_PER_CLUSTER * RESENDS_PER_HOUR * 730
    rate = events / SECONDS_PER_MONTH
    changes = clusters * OBJECTS_PER_CLUSTER * shape.changes_per_object_day * 30.4
    gb_seconds = _http_gb_seconds(rate, shape) + _queue_gb_seconds(clusters, rate, changes, shape)
    executions = events * (1 + shape.queue_executions) + changes * 2
    sb_operations = (events * shape.sends + changes) * OPERATIONS_PER_MESSAGE
    table = events * shape.table_requests + changes * shape.change_table_requests
    records = events * shape.records
    if shape.sampled_per_second is not None:  # rate-limited sampling, per HTTP instance
        cap = shape.sampled_per_second * _http_instances(rate, shape) * SECONDS_PER_MONTH
        records = min(records, cap)
    log_gb = records * shape.record_bytes / 1e9
    return {
        "Functions time": max(0.0, gb_seconds - FLEX_FREE_GB_SECONDS) * FLEX_GB_SECOND,
        "Functions executions": max(0.0, executions - FLEX_FREE_EXECUTIONS)
        / 1e6
        * FLEX_PER_MILLION_EXECUTIONS,
        "Service Bus": SB_BASE + _service_bus(sb_operations),
        "Table": table / 10_000 * TABLE_PER_10K,
        "Logs": log_gb * LOG_GB,
    }


# Service Bus operations per queued message as the Functions extension performs them with
# per-object sessions (docs/cost.md): send, accept session, receive, complete, and the receive
# that comes back empty when the session idles out.
OPERATIONS_PER_MESSAGE = 5


def _http_gb_seconds(rate: float, shape: Shape) -> float:
    """Every second has an execution at fleet rates (P = 1 - e^-rate per second): each HTTP
    instance is billed all month. Instances: what the CPU needs, at most 70 % busy."""
    instances = _http_instances(rate, shape)
    busy = 1 - math.exp(-rate / instances)
    return instances * busy * SECONDS_PER_MONTH * shape.http_instance_mb / 1024


def _http_instances(rate: float, shape: Shape) -> int:
    cpu = rate * (shape.http_instructions + shape.host_instructions)
    vcpus = cpu / shape.instructions_per_vcpu_second
    return max(1, math.ceil(vcpus / (0.7 * VCPU[shape.http_instance_mb])))


def _queue_gb_seconds(clusters: int, rate: float, changes: float, shape: Shape) -> float:
    """Re-sends that reach the queue keep its instances busy all month, as many as the session
    model needs (one message per session: each slot waits out the idle timeout); changes alone
    keep them busy during rollouts only."""
    memory = shape.queue_instance_mb / 1024
    queued = rate * shape.queue_executions
    if queued > 0:
        instances = math.ceil(queued / shape.session_messages_per_instance_second)
        return instances * SECONDS_PER_MONTH * memory
    rollout_rate = changes / 30.4 / shape.rollout_seconds_per_day
    instances = max(1, math.ceil(rollout_rate / shape.session_messages_per_instance_second))
    return instances * shape.rollout_seconds_per_day * 30.4 * memory


def _service_bus(operations: float) -> float:
    cost, floor = 0.0, 0.0
    for ceiling, price in SB_TIERS:
        cost += max(0.0, min(operations, ceiling) - floor) / 1e6 * price
        floor = ceiling
    return cost


# --- measured --------------------------------------------------------------------------------

# Figures of `--instructions` (callgrind, Python 3.11) and of the log count below, recorded so
# that the model runs without valgrind; `--instructions` measures them again.
MEASURED = {
    "door": {"http": 1.29e6, "queue": 0.0},
    "before": {"http": 0.49e6, "queue": 6.53e6},
}


def shapes(counts: dict[str, float], records: dict[str, float]) -> tuple[Shape, Shape]:
    before = Shape(
        sends=1,
        queue_executions=1,
        table_requests=1,
        http_instructions=MEASURED["before"]["http"],
        queue_instructions=MEASURED["before"]["queue"],
        records=records["before"] + 6,  # + the host's (unverified: the count)
    )
    after = replace(
        before,
        sends=counts["sends"],
        queue_executions=counts["executions"],
        table_requests=counts["requests"],
        http_instructions=MEASURED["door"]["http"],
        queue_instructions=MEASURED["door"]["queue"],
        records=records["after"] + 2,  # + the host's request and its per-execution trace
        sampled_per_second=SAMPLED_PER_SECOND,
        http_instance_mb=512,
        queue_instance_mb=512,
    )
    return before, after


# host.json `maxTelemetryItemsPerSecond` 0.5 and the worker's `microsoft.rate_limited` sampler at
# 0.5 per second (OTEL_TRACES_SAMPLER_ARG): 1 record per second and instance (docs/cost.md).
SAMPLED_PER_SECOND = 1.0


def measured_counts() -> dict[str, float]:
    """Per re-send: sends, executions and Table requests, from a small fleet on Azurite."""
    from bench.fleet import RESEND, Fleet, counting_world, loopback
    from connector.app.root import bootstrap

    with loopback() as (connection, azdo):
        world, counter = counting_world(connection, azdo, clusters=2)
        try:
            report = Fleet(world, counter).run(clusters=2, objects=2, resends=2)
        finally:
            bootstrap.override(None)
    sends, executions, requests = report.per_post(RESEND)
    queue = report.requests(RESEND)  # none reach the queue now
    return {
        "sends": sends,
        "executions": executions,
        "requests": requests + (sum(queue) / len(queue) if queue else 0.0),
    }


def worker_records() -> dict[str, float]:
    """Log records the worker emits per re-send: before the door at INFO (queued, processed),
    now at WARNING (answered at the door)."""
    return {"before": _records(door=False, level=logging.INFO), "after": _records(True, "WARNING")}


def _records(door: bool, level: int | str) -> float:
    """Log records at `level` and spans (each exported span is a record too: a request or a
    dependency), per re-send."""
    from bench.child import settled_world

    spans = _spans()
    logger = logging.getLogger("connector")
    with settled_world(door=door) as (_, resend):
        handler, kept = _Counting(level), logger.level
        logger.addHandler(handler)
        logger.setLevel(level)
        spans.clear()
        try:
            for i in range(10):
                resend(i)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(kept)
    return (handler.count + len(spans.get_finished_spans())) / 10


_EXPORTER: Any = None


def _spans() -> Any:
    """An in-memory exporter behind the global tracer provider (set once per process)."""
    global _EXPORTER  # noqa: PLW0603 - once per process
    if _EXPORTER is None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from connector import telemetry

        _EXPORTER = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
        telemetry._enable_azure_sdk_tracing()  # as in Azure: the SDKs' own spans too
    return _EXPORTER


class _Counting(logging.Handler):
    def __init__(self, level: int | str) -> None:
        super().__init__(level)
        self.count = 0
        self._level = logging.getLevelName(level) if isinstance(level, str) else level

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= self._level:
            self.count += 1


def instructions(variant: str, reads: int) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, str(ROOT / "bench" / "child.py"), variant, str(reads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(done.stderr[-2000:])
    return int(found.group(1))


def measure_instructions(n: int = 20) -> dict[str, dict[str, float]]:
    """Per re-send, less a floor measured in the same way (the same setup, no re-sends): at the
    door (the HTTP function answering), and without the door (the HTTP function queueing it and
    the queue function reading it)."""
    door = (instructions("door", n) - instructions("door", 0)) / n
    both = (instructions("both", n) - instructions("both", 0)) / n
    http = (instructions("http", n) - instructions("http", 0)) / n
    return {"door": {"http": door, "queue": 0.0}, "before": {"http": http, "queue": both - http}}


def table(title: str, shape: Shape) -> list[str]:
    lines = [title, f"{'clusters':>9s} " + " ".join(f"{k:>21s}" for k in LINES) + f" {'total':>8s}"]
    for clusters in (100, 1_000, 5_000):
        cost = monthly(clusters, shape)
        items = " ".join(f"{cost[k]:21,.0f}" for k in LINES)
        lines.append(f"{clusters:9,d} {items} {sum(cost.values()):8,.0f}")
    return lines


LINES = ("Functions time", "Functions executions", "Service Bus", "Table", "Logs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--instructions", action="store_true", help="measure with callgrind")
    args = parser.parse_args()
    if args.instructions:
        MEASURED.update(measure_instructions())
    counts = measured_counts()
    records = worker_records()
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    before, after = shapes(counts, records)
    print("per re-send (measured):")
    print(f"  Service Bus sends {counts['sends']:.2f}, queue executions {counts['executions']:.2f}")
    print(f"  Table requests {counts['requests']:.2f} (before the door: 1)")
    print(
        f"  instructions: HTTP function {MEASURED['door']['http'] / 1e6:.2f}M at the door;"
        f" before: {MEASURED['before']['http'] / 1e6:.2f}M HTTP +"
        f" {MEASURED['before']['queue'] / 1e6:.2f}M queue function"
    )
    print(
        f"  worker log records: {records['before']:.1f} before (INFO), {records['after']:.1f} now"
    )
    print(f"peak RSS {peak:.0f} MB (this process: both functions, fleets, the fake Azure DevOps)")
    for line in table("\nbefore ($/month, 2 GB instances, every re-send queued)", before):
        print(line)
    for line in table("\nnow ($/month, 512 MB instances, re-sends answered at the door)", after):
        print(line)


def report(shape: Shape, clusters: int) -> dict[str, Any]:
    cost = monthly(clusters, shape)
    return {**cost, "total": sum(cost.values())}


if __name__ == "__main__":
    main()
