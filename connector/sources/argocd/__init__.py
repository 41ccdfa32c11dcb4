"""Argo CD notifications: `webhook` service posts in, observations out.

`SOURCE` is everything the app needs to know of it (`connector.app.root.registry` lists it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.sources.plugin import Source, lazy

if TYPE_CHECKING:
    from connector.sources.argocd.translate import Report

SOURCE: Source[Report] = Source(
    name="argocd",
    route="argocd",
    doc="Argo CD notifications' webhook service (Bearer or basic-auth shared secret).",
    admission=lazy("connector.sources.argocd.ingest", "ArgoAdmission"),
    arrival=lazy("connector.sources.arrivals", "argocd_arrival"),
    translate=lazy("connector.sources.argocd.translate", "observe"),
    # Which notification fields hold each origin part of the Table keys, to name them in a 422
    # (cluster and env come from the URL, a label or the settings).
    key_fields={
        "env": ("env",),
        "cluster": ("cluster",),
        "object": ("metadata.namespace", "metadata.name"),
    },
    warm_up=("connector.sources.argocd.ingest", "connector.sources.argocd.translate"),
)
