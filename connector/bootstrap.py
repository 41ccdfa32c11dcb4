"""Composition root: which real adapters the app uses, built lazily and once per process.

Importing this module builds nothing and touches no network; the first invocation that needs an
adapter builds it from `Settings`. Tests replace adapters with `override(...)`.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from connector.settings import Settings, SettingsError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from connector.queue import MessageSender


class Container:
    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self._settings = settings
        # Overrides shadow the cached properties of the same name (tests pass fakes this way).
        self.__dict__.update(overrides)

    @cached_property
    def settings(self) -> Settings:
        return self._settings if self._settings is not None else Settings.from_env()

    @cached_property
    def credential(self) -> TokenCredential:
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

        client_id = self.settings.azure_client_id
        if client_id:
            # Deterministic in Azure: the user-assigned identity, never a developer login.
            return ManagedIdentityCredential(client_id=client_id)
        return DefaultAzureCredential()

    @cached_property
    def sender(self) -> MessageSender:
        from connector.queue import ServiceBusMessageSender

        s = self.settings
        if s.servicebus_connection is not None:
            return ServiceBusMessageSender(
                s.servicebus_queue, connection_string=s.servicebus_connection.get_secret_value()
            )
        if not s.servicebus_namespace:
            raise SettingsError(
                "Service Bus not configured: set ServiceBusConnection or "
                "ServiceBusConnection__fullyQualifiedNamespace"
            )
        return ServiceBusMessageSender(
            s.servicebus_queue, namespace=s.servicebus_namespace, credential=self.credential
        )


_lock = threading.Lock()
_container: Container | None = None


def container() -> Container:
    global _container  # noqa: PLW0603 - the process-wide composition root
    with _lock:
        if _container is None:
            _container = Container()
        return _container


def override(new: Container | None) -> None:
    """Install a container (tests), or None to rebuild from the environment on next use."""
    global _container  # noqa: PLW0603
    with _lock:
        _container = new
