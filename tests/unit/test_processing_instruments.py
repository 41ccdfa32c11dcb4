"""The processor's telemetry, injected (`core.processing.Instruments`): what the core tells it,
and the OpenTelemetry side the composition root passes (`telemetry.ProcessingInstruments`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from connector import telemetry
from connector.core.processing import QUIET, Processor
from connector.core.tracking import CLOCK_SKEW_TOLERANCE, Phase
from connector.storage.tables import TableStore
from tests.fakes.memory_tables import MemoryTableService
from tests.unit.test_core_processing import NOW, SHA, T0, observation


class Told:
    """Instruments that remember what they were told."""

    def __init__(self) -> None:
        self.described: list[dict[str, str]] = []
        self.drops: list[str] = []
        self.skews: list[str] = []

    def describe(self, attributes: Mapping[str, str]) -> None:
        self.described.append(dict(attributes))

    def dropped(self, why: str) -> None:
        self.drops.append(why)

    def skewed(self, cluster: str) -> None:
        self.skews.append(cluster)


def processor(told: Told) -> Processor:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    return Processor({}, store, (), clock=lambda: NOW, instruments=told)


def test_each_observation_describes_its_span() -> None:
    told = Told()
    processor(told).process(observation("m1", Phase.SUCCEEDED, 0))
    assert told.described == [
        {
            "connector.cluster": "c1",
            "connector.env": "prod",
            "connector.object": "Kustomization/flux-system/apps",
            "connector.commit": SHA,
            "connector.phase": "succeeded",
            "connector.reason": "ReconciliationSucceeded",
        }
    ]
    assert told.drops == told.skews == []


def test_what_changed_nothing_is_counted_by_its_verdict() -> None:
    told = Told()
    p = processor(told)
    p.process(observation("m1", Phase.SUCCEEDED, 60))
    p.process(observation("m2", Phase.SUCCEEDED, 60))  # the same state again
    p.process(observation("m3", Phase.PROGRESSING, 0))  # older than what is recorded
    assert told.drops == ["unchanged", "stale"]


def test_a_clock_ahead_is_counted_for_its_cluster() -> None:
    told = Told()
    ahead = (NOW - T0) + CLOCK_SKEW_TOLERANCE + timedelta(seconds=1)
    processor(told).process(observation("m1", Phase.SUCCEEDED, int(ahead.total_seconds())))
    assert told.skews == ["c1"]


def test_without_instruments_the_processor_tells_nobody() -> None:
    store = TableStore(MemoryTableService().as_sdk(), prefix="t")
    processor = Processor({}, store, (), clock=lambda: NOW)
    assert processor._instruments is QUIET
    assert processor.process(observation("m1", Phase.SUCCEEDED, 0)).value == "changed"


def test_the_opentelemetry_instruments_set_the_current_spans_attributes() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # not installed: the test's own, beside the process-wide one
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("queue.process"):
        telemetry.ProcessingInstruments().describe({"connector.cluster": "c1"})
    [span] = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {"connector.cluster": "c1"}


class Counter:
    def __init__(self) -> None:
        self.added: list[tuple[int, dict[str, str]]] = []

    def add(self, amount: int, attributes: Mapping[str, str]) -> None:
        self.added.append((amount, dict(attributes)))


def test_the_opentelemetry_instruments_count_on_the_connectors_counters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dropped, skewed = Counter(), Counter()
    monkeypatch.setattr(telemetry, "events_dropped", dropped)
    monkeypatch.setattr(telemetry, "events_skewed", skewed)
    instruments = telemetry.ProcessingInstruments()
    instruments.dropped("stale")
    instruments.skewed("c1")
    assert dropped.added == [(1, {"why": "stale"})]
    assert skewed.added == [(1, {"cluster": "c1"})]
