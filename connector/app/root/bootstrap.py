"""Composition root: which real adapters the app uses, built lazily and once per process.

Importing this module builds nothing and touches no network; the first invocation that needs an
adapter builds it from `Settings`. Tests replace adapters with `override(...)`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from connector.app.root import registry
from connector.app.root.doors import door_of
from connector.core.processing import ChangeListener, Processor
from connector.settings import Settings, SettingsError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from connector.app.views.deployments import DeploymentsView
    from connector.devops.client import AzureDevOpsClient
    from connector.devops.links import CommitLinks
    from connector.devops.trial import TrialAzureDevOps
    from connector.gates.keeper import GateKeeper
    from connector.gates.registration import Registration
    from connector.gates.service_hooks import ServiceHooks
    from connector.gates.store import GateStore
    from connector.outputs.spektate import SpektateWriter
    from connector.outputs.statuses import CommitStatusSink, StatusPublisher, StatusTarget
    from connector.outputs.subscribers import SubscriberNotifier
    from connector.queue.admin import QueueAdmin
    from connector.queue.deadletters import DeadLetterQueue
    from connector.queue.sender import MessageSender, OutgoingMessage
    from connector.sources.plugin import Handler
    from connector.storage.tables import TableStore


T = TypeVar("T")


class built(Generic[T]):  # noqa: N801 - used like `cached_property`
    """A lazily built, cached attribute, built under its container's own lock: the worker runs
    invocations on several threads. (`cached_property` locked per property across all instances
    until Python 3.12, and not at all since.) Cached in the instance dict, which also lets
    keyword overrides shadow it."""

    def __init__(self, build: Callable[[Any], T]) -> None:
        self._build = build
        self._name = build.__name__
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> built[T]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> T: ...
    def __get__(self, instance: object, owner: type[Any] | None = None) -> T | built[T]:
        if instance is None:
            return self
        cache = instance.__dict__
        with instance._build_lock:  # type: ignore[attr-defined]
            if self._name not in cache:
                cache[self._name] = self._build(instance)
            value: T = cache[self._name]
            return value


class Container:
    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self._build_lock = threading.RLock()
        self._settings = settings
        # Overrides shadow the cached properties of the same name (tests pass fakes this way).
        self.__dict__.update(overrides)

    @built
    def settings(self) -> Settings:
        return self._settings if self._settings is not None else Settings.from_env()

    @built
    def credential(self) -> TokenCredential:
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

        client_id = self.settings.azure_client_id
        if client_id:
            # Deterministic in Azure: the user-assigned identity, never a developer login.
            return ManagedIdentityCredential(client_id=client_id)
        return DefaultAzureCredential()

    @built
    def sender(self) -> MessageSender:
        from connector.queue.sender import ServiceBusMessageSender

        s = self.settings
        if s.local_queue_path:  # the embedded local host's queue (connector/queue/local.py)
            from connector.queue.local import LocalQueueSender

            return LocalQueueSender(s.local_queue_path)
        if s.servicebus_connection is not None:
            return ServiceBusMessageSender(
                s.servicebus_queue, connection_string=s.servicebus_connection.get_secret_value()
            )
        return ServiceBusMessageSender(
            s.servicebus_queue, namespace=self._sb_namespace(), credential=self._sb_credential()
        )

    def _sb_namespace(self) -> str:
        if not self.settings.servicebus_namespace:
            raise SettingsError(
                "Service Bus not configured: set ServiceBusConnection or "
                "ServiceBusConnection__fullyQualifiedNamespace"
            )
        return self.settings.servicebus_namespace

    def _sb_credential(self) -> TokenCredential:
        s = self.settings
        if s.servicebus_client_id and s.servicebus_client_id != s.azure_client_id:
            from azure.identity import ManagedIdentityCredential

            # The identity the trigger binding uses (`ServiceBusConnection__clientId`).
            return ManagedIdentityCredential(client_id=s.servicebus_client_id)
        return self.credential

    def webhook(self, source: str) -> Handler:
        """The `POST` handler of a registered source, built on its first request."""
        handlers: dict[str, Handler] = self.__dict__.setdefault("webhooks", {})
        if (found := handlers.get(source)) is None:  # every request but the first: no lock
            with self._build_lock:
                found = handlers.get(source) or handlers.setdefault(
                    source, registry.webhook(self, source, door_of(self))
                )
        return found

    @built
    def store(self) -> TableStore:
        from connector.storage.tables import TableStore

        s = self.settings
        from connector.storage.accounts import state_service

        setting, service = state_service(s, lambda: self.credential)
        try:
            days = s.cluster_report_window_days
            return TableStore(service(), prefix=s.state_table_prefix, cluster_window_days=days)
        except ValueError as exc:  # a malformed connection string: name the setting in use
            raise SettingsError(f"{setting}: {exc}") from None

    @built
    def devops(self) -> AzureDevOpsClient | TrialAzureDevOps:
        from connector.devops.trial import TrialAzureDevOps

        s = self.settings
        if not (s.azdo_org_url and s.azdo_project):
            raise SettingsError("Azure DevOps not configured: set AZDO_ORG_URL and AZDO_PROJECT")
        if s.trial_mode:
            # Reads are harmless: real ones when credentials are configured (PR gates work).
            configured = s.azdo_pat is not None or bool(s.azure_client_id)
            reader = self._azdo_client() if configured else None
            return TrialAzureDevOps(
                s.azdo_org_url, s.azdo_project, api_version=s.azdo_api_version, reader=reader
            )
        return self._azdo_client()

    def _azdo_client(self) -> AzureDevOpsClient:
        from connector.devops.client import AzureDevOpsClient

        s = self.settings
        if s.azdo_pat is not None:
            return AzureDevOpsClient(
                s.azdo_org_url,
                s.azdo_project,
                pat=s.azdo_pat.get_secret_value(),
                api_version=s.azdo_api_version,
            )
        return AzureDevOpsClient(
            s.azdo_org_url,
            s.azdo_project,
            credential=self.credential,
            api_version=s.azdo_api_version,
        )

    def _publisher(self, target: StatusTarget, sink: str) -> StatusPublisher:
        from connector.outputs.statuses import StatusPublisher

        s = self.settings
        ledger = self.store.ledger(sink)
        return StatusPublisher(target, ledger, genre=s.status_genre, target_url=s.status_target_url)

    @built
    def commit_statuses(self) -> CommitStatusSink:
        """Object and environment statuses on the manifests commit."""
        from connector.outputs.sinks import COMMIT_STATUS_SINK, HLD_STATUS_SINK
        from connector.outputs.statuses import CommitStatuses, CommitStatusSink

        s = self.settings
        if not s.azdo_gitops_repo:
            raise SettingsError("manifests repository not configured: set AZDO_GITOPS_REPO")
        target = CommitStatuses(self.devops, s.azdo_gitops_repo)
        links, hld = self.commit_links, None
        if links.repositories.three:  # env/<env> on the HLD commits too
            on_hld = CommitStatuses(self.devops, links.repositories.change)
            hld = (links, self._publisher(on_hld, HLD_STATUS_SINK))
        return CommitStatusSink(self._publisher(target, COMMIT_STATUS_SINK), hld=hld)

    @built
    def commit_links(self) -> CommitLinks:
        """What each manifests commit carries (HLD commit, merged PRs), verified and remembered."""
        from connector.gates.config import GatePolicy

        return GatePolicy.from_settings(self.settings).commit_links(self.devops, self.gate_store)

    def pull_request_statuses(self, repository: str, pull_request_id: int) -> StatusPublisher:
        """The publisher of one pull request's statuses (the gates' environment status)."""
        from connector.outputs.sinks import PR_STATUS_SINK
        from connector.outputs.statuses import PullRequestStatuses

        target = PullRequestStatuses(self.devops, repository, pull_request_id)
        return self._publisher(target, PR_STATUS_SINK)

    @built
    def processor(self) -> Processor:
        from connector.telemetry import ProcessingInstruments as Otel

        return Processor(self.settings.environments, self.store, self.listeners, instruments=Otel())

    @built
    def gatekeeper(self) -> GateKeeper:
        from connector.app.root import gates
        from connector.gates.config import GatePolicy
        from connector.gates.rechecks import GateChecks

        return gates.gatekeeper(
            GatePolicy.from_settings(self.settings),
            self.gate_store,
            self.store,
            self.devops,
            self.pull_request_statuses,
            job_client=gates.job_client(self.settings),
            checks=GateChecks(_LazySender(self)),
            links=self.commit_links,
        )

    @built
    def gate_store(self) -> GateStore:
        from connector.gates.store import GateStore

        return GateStore(self.store)

    @built
    def registration(self) -> Registration:
        from connector.gates.registration import Registration

        return Registration(self.settings, self.gatekeeper, self.sender, self.gate_store)

    @built
    def service_hooks(self) -> ServiceHooks:
        from connector.gates.service_hooks import ServiceHooks

        return ServiceHooks(self.settings, self.gatekeeper)

    @built
    def deployments_view(self) -> DeploymentsView:
        from connector.app.views.deployments import DeploymentsView

        # The store is built on first request, so that a storage setting error is a 503 there.
        return DeploymentsView(lambda: self.store, self.settings.environments)

    @built
    def spektate(self) -> SpektateWriter | None:
        """Spektate's own storage account: a connection string, or (in Azure) its table
        endpoint with the function's managed identity. None when not configured."""
        from connector.outputs.spektate import SpektateWriter
        from connector.outputs.spektate_rows import (
            links_from_commits,
            links_from_metadata,
            repository_url,
        )
        from connector.storage.rows import connect

        s = self.settings
        if s.spektate_storage is not None:
            service = connect(connection_string=s.spektate_storage.get_secret_value())
        elif s.spektate_storage_account_url:
            service = connect(
                account_url=s.spektate_storage_account_url, credential=self.credential
            )
        else:
            return None
        if not s.spektate_partition_key:
            raise SettingsError("Spektate is configured but SPEKTATE_PARTITION_KEY is not set")
        deployments = s.spektate_deployments_table
        three = bool(s.azdo_gitops_repo) and self.commit_links.repositories.three
        return SpektateWriter(
            service.get_table_client(s.spektate_table),
            partition_key=s.spektate_partition_key,
            deployments=service.get_table_client(deployments) if deployments else None,
            manifest_repo=repository_url(s.azdo_org_url, s.azdo_project, s.azdo_gitops_repo),
            links=links_from_commits(self.commit_links) if three else links_from_metadata,
        )

    @built
    def subscribers(self) -> SubscriberNotifier | None:
        """Outgoing webhooks, with deliveries recorded in the state store. None without URLs."""
        from connector.outputs.subscribers import DeliveryLedger, SubscriberNotifier

        s = self.settings
        if not s.subscribers:
            return None
        key = s.subscribers_hmac_key
        ledger = DeliveryLedger(self.store.table("subscriberdeliveries"))
        try:
            return SubscriberNotifier(
                s.subscribers,
                ledger,
                key=key.get_secret_value().encode() if key is not None else None,
            )
        except ValueError as exc:  # names the problem, never the URL
            raise SettingsError(f"SUBSCRIBERS: {exc}") from None

    @built
    def dead_letters(self) -> DeadLetterQueue:
        from connector.queue.deadletters import ServiceBusDeadLetterQueue as ServiceBus
        from connector.queue.local import LocalDeadLetters

        if path := self.settings.local_queue_path:  # the embedded local host's queue
            return LocalDeadLetters(path)
        return ServiceBus.from_settings(self.settings, lambda: self.credential)

    @built
    def queue_admin(self) -> QueueAdmin:
        """The queue's settings for `doctor`, with the identity (or connection) the app uses."""
        from connector.queue import admin

        if (connection := self.settings.servicebus_connection) is not None:  # the emulator's too
            return admin.from_connection_string(connection.get_secret_value())
        return admin.for_namespace(self._sb_namespace(), self._sb_credential())

    @built
    def listeners(self) -> list[ChangeListener]:
        """The outputs, told in the registry's order; each runs even if one failed (raised
        after all); those not configured are left out."""
        return registry.listeners(self)


class _LazySender:
    """The container's sender, built when a message is first sent: the gatekeeper is needed
    where no Service Bus is configured (the CLI, the sweep before any grace runs out)."""

    def __init__(self, container: Container) -> None:
        self._container = container

    def send(self, message: OutgoingMessage) -> None:
        from connector.queue.sender import QueueUnavailableError

        try:
            sender = self._container.sender
        except SettingsError as exc:
            raise QueueUnavailableError(f"not configured: {exc}") from None
        sender.send(message)


_lock = threading.Lock()
_container: Container | None = None


def container() -> Container:
    global _container  # noqa: PLW0603 - the process-wide composition root
    if (built := _container) is not None:  # every request but the first: no lock to read it
        return built
    with _lock:
        if _container is None:
            from connector import console_logs, telemetry

            telemetry.configure()
            telemetry.install_log_correlation()
            console_logs.install(os.environ)
            _container = Container()
        return _container


def override(new: Container | None) -> None:
    """Install a container (tests), or None to rebuild from the environment on next use."""
    global _container  # noqa: PLW0603
    with _lock:
        _container = new
