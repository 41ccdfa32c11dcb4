"""What the ingest door (`connector.core.door`) needs of each source's admitted event (each
`Source.arrival`): the same state row, phase and time as the source's translator gives the
processor (`tests/integration/test_door.py` holds them together for every recorded event). Kept
out of the translators, which are mutation-tested with the core's own tests."""

from __future__ import annotations

from datetime import datetime

from connector.core.door import Arrival
from connector.sources.argocd.translate import KIND, Report, phase_of
from connector.sources.flux.events import FluxEvent
from connector.sources.flux.translate import classify
from connector.sources.plugin import Admitted


def flux_arrival(admitted: Admitted[FluxEvent], received_at: datetime) -> Arrival:
    """As `flux.translate.observe` (which takes the event's own time, not `received_at`)."""
    event, cluster, env = admitted.event, admitted.cluster, admitted.env
    obj = event.involved_object
    phase = classify(event)
    return Arrival(
        env, cluster, obj.kind, obj.namespace, obj.name, admitted.commit, phase, event.timestamp
    )


def argocd_arrival(admitted: Admitted[Report], received_at: datetime) -> Arrival:
    """As `argocd.translate.observe`, which reads `received_at` back from the envelope."""
    report, cluster, env = admitted.event, admitted.cluster, admitted.env
    phase = phase_of(report.operation, report.health)
    time = report.time or received_at
    return Arrival(env, cluster, KIND, report.namespace, report.name, report.commit, phase, time)
