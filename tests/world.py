"""A whole connector on loopback: the registered functions, Azurite tables, the fake Azure
DevOps, and the recording Service Bus sender whose messages are handed to the queue function."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage

import function_app
from connector.app.root import bootstrap
from connector.app.root.bootstrap import Container
from connector.devops.client import AzureDevOpsClient
from connector.queue.sender import OutgoingMessage
from connector.settings import Settings
from connector.storage.tables import TableStore
from tests.conftest import BASE_SETTINGS, flux_request
from tests.fakes.azdo_server import FakeAzureDevOps
from tests.flux_encoding import go_json
from tests.recording_sender import RecordingSender

PAT = "test-pat-value-1234567890"
REPO = "manifests"
PROJECT = "fabrikam-project"


@dataclass
class World:
    azdo: FakeAzureDevOps
    store: TableStore
    sender: RecordingSender = field(default_factory=RecordingSender)
    container: Container | None = None

    def configure(self, **settings: str) -> Container:
        values = {
            **BASE_SETTINGS,
            "AZDO_ORG_URL": self.azdo.org_url,
            "AZDO_PROJECT": PROJECT,
            "AZDO_GITOPS_REPO": REPO,
            "AZDO_PAT": PAT,
            **settings,
        }
        parsed = Settings.from_env(values)
        client = AzureDevOpsClient(
            self.azdo.org_url,
            PROJECT,
            pat=PAT,
            retry_total=3,
            retry_backoff_factor=0,
            retry_backoff_max=0,
        )
        self.container = Container(parsed, sender=self.sender, store=self.store, devops=client)
        bootstrap.override(self.container)
        return self.container

    def post(self, event: bytes | dict, *, cluster: str = "dev-1", env: str = "dev") -> int:
        body = event if isinstance(event, bytes) else go_json(event)
        req = flux_request(body, params={"cluster": cluster, "env": env})
        return function_app.flux(req).status_code

    def deliver_queued(self, *, redeliver: bool = False) -> int:
        """Hand every queued message to the queue function, as the host would."""
        messages = self.sender.drain()
        for message in messages:
            self.process(message)
            if redeliver:
                self.process(message, delivery_count=2)
        return len(messages)

    def send(self, event: bytes | dict, *, cluster: str = "dev-1", env: str = "dev") -> None:
        assert self.post(event, cluster=cluster, env=env) == 202
        self.deliver_queued()

    def process(self, message: OutgoingMessage, delivery_count: int = 1) -> None:
        function_app.process(servicebus_message(message, delivery_count))


def servicebus_message(message: OutgoingMessage, delivery_count: int = 1) -> func.ServiceBusMessage:
    return ServiceBusMessage(
        body=message.body,
        message_id=message.message_id,
        session_id=message.session_id,
        delivery_count=delivery_count,
        application_properties=dict(message.application_properties),
        user_properties={},
    )


def kustomization(
    commit: str,
    reason: str = "ReconciliationSucceeded",
    *,
    name: str = "apps",
    namespace: str = "flux-system",
    time: str = "2026-05-14T09:12:50Z",
    message: str | None = None,
    severity: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> dict:
    error = reason.endswith("Failed") or reason in {"AccessDenied"}
    meta = {"revision": f"main@sha1:{commit}", **(metadata or {})}
    if reason == "ReconciliationSucceeded":
        meta["commit_status"] = "update"
    return {
        "involvedObject": {
            "kind": "Kustomization",
            "namespace": namespace,
            "name": name,
            "uid": "u-" + name,
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "resourceVersion": "1",
        },
        "severity": severity or ("error" if error else "info"),
        "timestamp": time,
        "message": message or f"{reason} for {name} at {time}",
        "reason": reason,
        "metadata": meta,
        "reportingController": "kustomize-controller",
        "reportingInstance": "kustomize-controller-1",
    }


def rollout_events(
    commit: str, clusters: tuple[str, ...], objects: tuple[str, ...], resends: int
) -> list[tuple[dict, str]]:
    """A rollout as Flux reports it, per cluster and Kustomization: the change set, "health
    check passed" (both `Progressing`), success, then periodic `ReconciliationSucceeded`."""
    events = []
    for cluster in clusters:
        for name in objects:
            steps = [
                kustomization(commit, "Progressing", name=name, time="2026-05-14T09:12:00Z"),
                kustomization(
                    commit,
                    "Progressing",
                    name=name,
                    time="2026-05-14T09:12:30Z",
                    message="Health check passed in 29.1s",
                ),
                kustomization(commit, name=name, time="2026-05-14T09:12:31Z"),
            ]
            steps += [
                kustomization(commit, name=name, time=f"2026-05-14T{10 + i:02d}:00:00Z")
                for i in range(resends)
            ]
            events += [(step, cluster) for step in steps]
    return events


def statuses_by_context(azdo: FakeAzureDevOps, commit: str) -> dict[str, list[str]]:
    """Context name → the states posted to it, in order."""
    result: dict[str, list[str]] = {}
    for status in azdo.commit_statuses(REPO, commit):
        result.setdefault(status["context"]["name"], []).append(status["state"])
    return result


def latest(azdo: FakeAzureDevOps, commit: str) -> dict[str, dict]:
    return {s["context"]["name"]: s for s in azdo.commit_statuses(REPO, commit)}


def dumps(obj: object) -> str:
    return json.dumps(obj, sort_keys=True)
