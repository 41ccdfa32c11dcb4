"""What the benchmarks send: Flux events of a chosen size, the key that signs them, and a sender
that stops where the network would start. Imports nothing of the app but `connector.queue`, so a
cold-start measurement can use it without warming anything."""

from __future__ import annotations

import json

from connector.queue.sender import OutgoingMessage, to_servicebus_message

KEY = b"bench-hmac-key"


class BuildingSender:
    """Does what the real sender does before the network: build the SDK message."""

    def __init__(self, *, keep: bool = False) -> None:
        self.kept: list[OutgoingMessage] = []
        self._keep = keep

    def send(self, message: OutgoingMessage) -> None:
        to_servicebus_message(message)
        if self._keep:
            self.kept.append(message)


def event(size: int) -> bytes:
    base = {
        "involvedObject": {
            "kind": "Kustomization",
            "namespace": "flux-system",
            "name": "apps",
            "uid": "fb27538a-f850-4981-87f5-3cbdde200363",
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "resourceVersion": "48213402",
        },
        "severity": "error",
        "timestamp": "2026-05-14T09:12:50Z",
        "message": "",
        "reason": "ReconciliationFailed",
        "metadata": {
            "cluster": "aks-prod-weu-01",
            "env": "production",
            "revision": "main@sha1:c8925188500a55dad9563388e537a03dcdded446",
        },
        "reportingController": "kustomize-controller",
        "reportingInstance": "kustomize-controller-7b9c5f6d4-x8k2p",
    }
    overhead = len(json.dumps(base, separators=(",", ":")))
    base["message"] = ("Deployment/apps/podinfo dry-run failed: invalid\n" * 1000)[
        : max(size - overhead, 10)
    ]
    return json.dumps(base, separators=(",", ":")).encode()
