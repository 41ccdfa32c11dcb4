"""Reading a Service Bus queue's settings (sessions, duplicate detection) for `doctor`.

`azure.servicebus.management.ServiceBusAdministrationClient` fits `QueueAdmin` as it is; its
`get_queue` needs Manage rights, which the app's identity usually lacks (it sends and listens).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


class QueueDescription(Protocol):
    """The two properties of `azure.servicebus.management.QueueProperties` doctor reads."""

    @property
    def requires_session(self) -> bool | None: ...

    @property
    def requires_duplicate_detection(self) -> bool | None: ...


class QueueAdmin(Protocol):
    def get_queue(self, queue_name: str) -> QueueDescription: ...


# The emulator answers management requests over plain HTTP on its own port, 5300 by default
# (Azure/azure-service-bus-emulator-installer README, "Choosing the right connection string":
# the administration client needs `Endpoint=sb://localhost:5300` and the emulator's HTTP port,
# EMULATOR_HTTP_PORT; emulator 2.0 and later). azure-servicebus's administration client always
# builds `https://<host>` (7.15, `_management_client.py`), so with `UseDevelopmentEmulator=true`
# it would reach localhost:443; a transport that rewrites the scheme and port keeps it honest.
EMULATOR_MANAGEMENT_PORT = 5300
_AMQP_PORT = 5672  # a port in the app's connection string names AMQP, not management


def emulator_management_port(connection_string: str) -> int | None:
    """The management port when the connection string is the emulator's, else None."""
    parts = {
        k.strip().lower(): v.strip()
        for k, _, v in (p.partition("=") for p in connection_string.split(";") if p.strip())
    }
    if parts.get("usedevelopmentemulator", "").lower() != "true":
        return None
    host = parts.get("endpoint", "").split("//", 1)[-1].rstrip("/")
    _, _, port = host.partition(":")
    return int(port) if port.isdigit() and int(port) != _AMQP_PORT else EMULATOR_MANAGEMENT_PORT


def from_connection_string(connection_string: str) -> QueueAdmin:
    """The administration client for a connection string, the emulator's included."""
    from azure.servicebus.management import ServiceBusAdministrationClient

    port = emulator_management_port(connection_string)
    if port is None:
        return ServiceBusAdministrationClient.from_connection_string(connection_string)
    return ServiceBusAdministrationClient.from_connection_string(
        connection_string, transport=_plain_http(port), retry_total=1
    )


def for_namespace(namespace: str, credential: TokenCredential) -> QueueAdmin:
    from azure.servicebus.management import ServiceBusAdministrationClient

    return ServiceBusAdministrationClient(namespace, credential)


def _plain_http(port: int) -> object:
    import urllib.parse

    from azure.core.pipeline.transport import RequestsTransport

    class PlainHttp(RequestsTransport):  # type: ignore[misc]
        def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
            parts = urllib.parse.urlsplit(request.url)
            netloc = f"{parts.hostname}:{port}"
            request.url = urllib.parse.urlunsplit(("http", netloc, *parts[2:]))
            return super().send(request, **kwargs)

    return PlainHttp()
