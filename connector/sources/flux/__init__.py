"""Flux notification-controller: signed webhooks in, observations out.

`SOURCE` is everything the app needs to know of it (`connector.app.root.registry` lists it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.sources.plugin import Source, lazy

if TYPE_CHECKING:
    from connector.sources.flux.events import FluxEvent

SOURCE: Source[FluxEvent] = Source(
    name="flux",
    route="flux",
    doc="Flux notification-controller webhook (generic / generic-hmac).",
    admission=lazy("connector.sources.flux.ingest", "FluxAdmission"),
    arrival=lazy("connector.sources.arrivals", "flux_arrival"),
    translate=lazy("connector.sources.flux.translate", "observe"),
    # Which event fields hold each origin part of the Table keys, to name them in a 422.
    key_fields={
        "env": ("metadata.env",),
        "cluster": ("metadata.cluster",),
        "object": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name"),
    },
    warm_up=("connector.sources.flux.ingest", "connector.sources.flux.translate"),
)
